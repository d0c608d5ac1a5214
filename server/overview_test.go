package server_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
)

// TestAdminOverviewCluster: the overview a dashboard gets from one node
// shows every node of the cluster with its sockets and its engines'
// state, and the messages stored anywhere in the last minutes; a node that
// stops is shown stopped, and its sockets are no longer counted.
func TestAdminOverviewCluster(t *testing.T) {
	nodes := servertest.StartCluster(t, 2, servertest.Options{Server: server.Config{ReportEvery: 100 * time.Millisecond}})
	ctx := ctxT(t)
	a := signedInAdmin(t, nodes[0])
	// Alice on node 0, Bob on node 1, each signed in on its node.
	alice := nodes[0].Login(t, "+14155550971", "a")
	bob := nodes[1].Login(t, "+14155550972", "b")
	for i := range 3 {
		if _, err := bob.Send(ctx, alice.Session().UserID, text("hello "+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}

	type nodeView struct {
		NodeID      string `json:"node_id"`
		Up, Self    bool
		Stopped     bool
		Connections int
		Engines     server.Engines
		Checks      map[string]struct{ State, Detail string }
	}
	type overview struct {
		Connections int
		NodesUp     int `json:"nodes_up"`
		Nodes       []nodeView
		Minutes     []int64 `json:"messages_per_minute"`
	}
	get := func() overview {
		var o overview
		a.getJSON("/v1/admin/overview", &o)
		return o
	}
	sum := func(xs []int64) (n int64) {
		for _, x := range xs {
			n += x
		}
		return n
	}
	node := func(o overview, id string) *nodeView {
		for i := range o.Nodes {
			if o.Nodes[i].NodeID == id {
				return &o.Nodes[i]
			}
		}
		return nil
	}
	id1 := nodes[1].Srv.NodeID()
	var o overview
	eventually(t, func() (bool, string) {
		o = get()
		n1 := node(o, id1)
		return o.NodesUp == 2 && o.Connections == 2 && sum(o.Minutes) == 3 && n1 != nil && n1.Connections == 1,
			fmt.Sprintf("want both nodes up, 2 sockets, 3 messages; overview: %+v", o)
	})
	if len(o.Minutes) != 60 {
		t.Fatalf("messages_per_minute has %d points, want 60 (an hour)", len(o.Minutes))
	}
	n1 := node(o, id1)
	if n1.Self || !node(o, nodes[0].Srv.NodeID()).Self {
		t.Fatalf("self flags: %+v", o.Nodes)
	}
	if n1.Engines.Store != "mongo" || n1.Engines.Router != "rabbitmq" || n1.Engines.SMS != "http" {
		t.Fatalf("node 1 engines: %+v", n1.Engines)
	}
	for _, name := range []string{"store", "broker"} {
		if c := n1.Checks[name]; c.State != "ok" || c.Detail == "" {
			t.Fatalf("node 1 %s check: %+v", name, c)
		}
	}
	// Bob's code went through node 1's gateway, Alice's through node 0's.
	if c := n1.Checks["sms"]; c.State != "ok" {
		t.Fatalf("node 1 sms check: %+v", c)
	}

	nodes[1].Stop()
	eventually(t, func() (bool, string) {
		o = get()
		n1 := node(o, id1)
		return n1 != nil && !n1.Up && n1.Stopped && o.NodesUp == 1 && o.Connections == 1,
			fmt.Sprintf("want node 1 stopped and its socket not counted; overview: %+v", o)
	})
	if sum(o.Minutes) != 3 {
		t.Fatalf("messages after node 1 stopped: %v, want the 3 it stored still counted", o.Minutes)
	}

	// Without a session: nothing.
	if code, _, _ := newAdminClient(t, nodes[0].URL).do(http.MethodGet, "/v1/admin/overview", nil, false); code != http.StatusUnauthorized {
		t.Fatalf("overview without a session: %d", code)
	}
}
