package server

import (
	"testing"

	"github.com/tern-im/tern/wire"
)

// TestAttachKeepsTheLastAdmittedSocket: two sockets of one device race from
// their upgrade to attach; whichever order they arrive in, the one admitted
// last is the device's session, and the other is refused or replaced.
func TestAttachKeepsTheLastAdmittedSocket(t *testing.T) {
	first := &session{deviceID: "d1", seq: 1}
	second := &session{deviceID: "d1", seq: 2}

	s := &Server{sessions: map[string]*session{}, byUser: map[string][]*session{}}
	if old, refuse, _ := s.attach(first); old != nil || refuse != 0 {
		t.Fatalf("first attach: old %v refuse %d", old, refuse)
	}
	if old, refuse, _ := s.attach(second); old != first || refuse != 0 {
		t.Fatalf("second attach in order: old %v refuse %d, want the first replaced", old, refuse)
	}

	s = &Server{sessions: map[string]*session{}, byUser: map[string][]*session{}}
	s.attach(second)
	if old, refuse, _ := s.attach(first); old != nil || refuse != wire.CloseReplaced {
		t.Fatalf("first socket attaching late: old %v refuse %d, want it refused with %d", old, refuse, wire.CloseReplaced)
	}
	if s.sessions["d1"] != second {
		t.Fatal("the late first socket displaced the second")
	}

	s.draining.Store(true)
	third := &session{deviceID: "d1", seq: 3}
	if _, refuse, _ := s.attach(third); refuse != websocketGoingAway {
		t.Fatalf("attach while draining: refuse %d, want %d", refuse, websocketGoingAway)
	}
}
