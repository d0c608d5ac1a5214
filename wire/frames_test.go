package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeClientFrame(t *testing.T) {
	ok := []string{
		`{"type":"send","id":"c1","to":"u1","body":{"text":"hi"}}`,
		`{"type":"send","id":"c1","to":"u1","body":{"media_id":"m1","caption":"look"},"reply_to":"m0"}`,
		`{"type":"ack","cursor":12}`,
		`{"type":"read","chat_id":"c","seq":3}`,
		`{"type":"typing","chat_id":"c","state":"paused"}`,
		`{"type":"presence_sub","user_ids":["u1","u2"]}`,
		`{"type":"ping","id":"p"}`,
		` {"type":"ping","future_field":{"x":1}} `,
		`{"type":"send","id":"r","to":"u1","body":{"reaction":{"msg_id":"m1","emoji":"👍🏽"}}}`,
		`{"type":"send","id":"r","to":"u1","body":{"reaction":{"msg_id":"m1","emoji":""}}}`,
		`{"type":"send","id":"e","to":"u1","body":{"edit":{"msg_id":"m1","text":"fixed"}}}`,
		`{"type":"send","id":"d","to":"g1","body":{"delete":{"msg_id":"m1"}}}`,
	}
	for _, s := range ok {
		if _, err := DecodeClientFrame([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := map[string]string{
		``:                                   CodeBadRequest,
		`null`:                               CodeBadRequest,
		`"send"`:                             CodeBadRequest,
		`{"type":1}`:                         CodeBadRequest,
		`{}`:                                 CodeBadRequest,
		`{"type":"warp"}`:                    CodeUnknownType,
		`{"type":"send","to":"u","body":{}}`: CodeBadRequest,
		`{"type":"send","id":"x","to":"u","body":{"text":"a","media_id":"m"}}`:                                             CodeBadRequest,
		`{"type":"send","id":"x","to":"u","body":{"text":"a","caption":"c"}}`:                                              CodeBadRequest,
		`{"type":"send","id":"x","to":"u","body":{"text":"\xff"}}`:                                                         CodeBadRequest,
		`{"type":"ack","cursor":-1}`:                                                                                       CodeBadRequest,
		`{"type":"send","id":"x","to":"u","body":{"reaction":{"msg_id":"m","emoji":"` + strings.Repeat("😀", 2500) + `"}}}`: CodeBadRequest,
		`{"type":"send","id":"x","to":"u","body":{"reaction":{"emoji":"x"}}}`:                                              CodeBadRequest,
		`{"type":"send","id":"x","to":"u","body":{"reaction":{"msg_id":"m","emoji":"\u0007"}}}`:                            CodeBadRequest,
		`{"type":"send","id":"x","to":"u","body":{"edit":{"msg_id":"m"}}}`:                                                 CodeBadRequest,
		`{"type":"send","id":"x","to":"u","body":{"edit":{"msg_id":"m","text":"a"},"text":"b"}}`:                           CodeBadRequest,
		`{"type":"send","id":"x","to":"u","body":{"delete":{"msg_id":"m"},"reaction":{"msg_id":"m"}}}`:                     CodeBadRequest,
		`{"type":"send","id":"x","to":"u","body":{"deleted":true}}`:                                                        CodeBadRequest,
		`{"type":"send","id":"x","to":"u","body":{"disappearing":86400}}`:                                                  CodeBadRequest,
		`{"type":"send","id":"x","to":"u","body":{"poke":{"msg_id":"m"}}}`:                                                 CodeBadRequest,
		`{"type":"read","chat_id":"c"}`:                                                                                    CodeBadRequest,
		`{"type":"typing","chat_id":"c","state":"x"}`:                                                                      CodeBadRequest,
		`{"type":"ping","id":"` + strings.Repeat("i", MaxIDLen+1) + `"}`:                                                   CodeBadRequest,
		`{"type":"presence_sub","user_ids":[` + strings.Repeat(`"u",`, MaxPresenceIn) + `"u"]}`:                            CodeTooLarge,
	}
	for s, code := range bad {
		_, err := DecodeClientFrame([]byte(s))
		var we *Error
		if !errors.As(err, &we) || we.Code != code {
			t.Errorf("%.60s: got %v, want %s", s, err, code)
		}
	}
}

func TestFastAckAgreesWithJSON(t *testing.T) {
	for _, s := range []string{`{"type":"ack","cursor":1}`, `{"type":"ack","cursor":123456789012345678}`,
		`{"type":"ack","cursor":0}`, `{"type":"ack","cursor":01}`, `{"type":"ack","cursor":1 }`,
		`{"type":"ack","cursor":-1}`, `{"type":"ack","cursor":1e3}`, `{"type":"ack","cursor":}`} {
		fast, fok := fastAck([]byte(s))
		f, err := DecodeClientFrame([]byte(s))
		if fok && (err != nil || f.Cursor != fast) {
			t.Errorf("%s: fast path %d, general path %+v %v", s, fast, f, err)
		}
	}
	if _, ok := fastAck([]byte(`{"type":"ack","cursor":42}`)); !ok {
		t.Fatal("the SDK's ack form must take the fast path")
	}
}

func TestDecodeKeepsIDOfMalformedFrame(t *testing.T) {
	f, err := DecodeClientFrame([]byte(`{"type":"ack","id":"a7","cursor":"nope"}`))
	if err == nil || f.ID != "a7" {
		t.Fatalf("got id %q err %v, want the id kept for the error answer", f.ID, err)
	}
}

// FuzzDecodeClientFrame: the decoder never panics, errors are always
// protocol errors, and an accepted frame is valid and survives a round trip.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"send","id":"c1","to":"u1","body":{"text":"hi"}}`,
		`{"type":"ack","cursor":1}`, `{"type":"read","chat_id":"c","seq":1}`,
		`{"type":"typing","chat_id":"c","state":"typing"}`, `{"type":"ping"}`,
		`{"type":"presence_sub","user_ids":["u"]}`, `{`, `[]`, `{"type":null}`,
		`{"type":"send","id":"r","to":"u1","body":{"reaction":{"msg_id":"m1","emoji":"👍"}}}`,
		`{"type":"send","id":"e","to":"u1","body":{"edit":{"msg_id":"m1","text":"fixed"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, ok := fastAck(data); ok {
			var ref ClientFrame
			if err := json.Unmarshal(data, &ref); err != nil || ref.Type != TypeAck || ref.Cursor != c {
				t.Fatalf("fast ack %d disagrees with encoding/json: %+v %v", c, ref, err)
			}
		}
		fr, err := DecodeClientFrame(data)
		if err != nil {
			var we *Error
			if !errors.As(err, &we) || we.Code == "" || we.Message == "" {
				t.Fatalf("non-protocol error %T %v", err, err)
			}
			return
		}
		if err := fr.Validate(); err != nil {
			t.Fatalf("accepted frame fails validation: %v", err)
		}
		again, err := json.Marshal(fr)
		if err != nil {
			t.Fatal(err)
		}
		fr2, err := DecodeClientFrame(again)
		if err != nil {
			t.Fatalf("re-encoded frame rejected: %v\n%s", err, again)
		}
		if fr2.Type != fr.Type || fr2.ID != fr.ID || fr2.Cursor != fr.Cursor || fr2.Seq != fr.Seq {
			t.Fatalf("round trip changed the frame: %+v vs %+v", fr, fr2)
		}
	})
}

func FuzzDecodeServerFrame(f *testing.F) {
	f.Add([]byte(`{"type":"message","cursor":1,"msg_id":"m","body":{"text":"x"}}`))
	f.Add([]byte(`{"type":"receipt","msg_ids":["a"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := DecodeServerFrame(data)
		if err == nil && fr.Type == "" {
			t.Fatal("accepted a frame without type")
		}
	})
}

func TestPeekID(t *testing.T) {
	for in, want := range map[string]string{
		`{"type":"send","id":"abc","to":"u"`:             "abc",
		`{"type":"send", "id" : "x-1"`:                   "x-1",
		`{"type":"send","body":{"text":"\"id\":\"no\""}`: "",
		`{"type":"send","body":{"media_id":"m1"}`:        "",
		`garbage`: "",
	} {
		if got := PeekID([]byte(in)); got != want {
			t.Errorf("PeekID(%s) = %q, want %q", in, got, want)
		}
	}
}
