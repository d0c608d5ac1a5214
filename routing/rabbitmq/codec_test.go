package rabbitmq

import (
	"bytes"
	"math"
	"slices"
	"testing"

	"github.com/tern-im/tern/routing"
)

func TestCodecRoundTrip(t *testing.T) {
	for _, env := range []routing.Envelope{
		{Kind: routing.KindEvent, Cursor: 1, Frame: []byte(`{"type":"message"}`)},
		{Kind: routing.KindFrame, Frame: []byte(`{}`)},
		{Kind: routing.KindRevoke},
		{Kind: 255, Cursor: math.MaxInt64, Frame: []byte{0}},
		{Kind: 0, Cursor: math.MinInt64},
		{Kind: routing.KindUsers, Frame: []byte(`{"type":"typing"}`), Users: []string{"u1", "", "u3"}},
		{Kind: routing.KindUsers, Users: []string{}},
		{Kind: routing.KindPokeUsers, Users: []string{"u1"}},
	} {
		b := encode(env)
		got, err := decode(b)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", env, err)
		}
		if got.Kind != env.Kind || got.Cursor != env.Cursor || !bytes.Equal(got.Frame, env.Frame) || !slices.Equal(got.Users, env.Users) {
			t.Fatalf("round trip: got %+v, want %+v", got, env)
		}
	}
	// The layout is part of the cluster's wire: nodes of different versions
	// share the exchange during a rolling upgrade.
	if b := encode(routing.Envelope{Kind: 1, Cursor: 300, Frame: []byte("x")}); !bytes.Equal(b, []byte{1, 0xd8, 0x04, 'x'}) {
		t.Fatalf("encode layout changed: % x", b)
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	for _, b := range [][]byte{nil, {1}, {1, 0x80}, {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{routing.KindUsers, 0},                   // no user count
		{routing.KindUsers, 0, 5, 1, 'a'},        // five users announced, one there
		{routing.KindUsers, 0, 1, 9, 'a', 'b'},   // a user longer than the rest
		{routing.KindUsers, 0, 0xff, 0xff, 0xff}, // a broken count
	} {
		if _, err := decode(b); err == nil {
			t.Errorf("decode(% x) accepted", b)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(routing.Envelope{Kind: routing.KindEvent, Cursor: 42, Frame: []byte(`{"type":"message"}`)}))
	f.Add([]byte{})
	f.Add([]byte{2, 0})
	f.Add(encode(routing.Envelope{Kind: routing.KindUsers, Frame: []byte(`{}`), Users: []string{"u1", "u2"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := decode(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes, unless the varint
		// was not minimal.
		again, err := decode(encode(env))
		if err != nil || again.Kind != env.Kind || again.Cursor != env.Cursor || !bytes.Equal(again.Frame, env.Frame) || !slices.Equal(again.Users, env.Users) {
			t.Fatalf("re-decode of %+v: %+v, %v", env, again, err)
		}
	})
}
