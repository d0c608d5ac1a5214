package wire

import (
	"encoding/json"
	"errors"
	"reflect"
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

// FuzzDecodeServerFrame: the decoder never panics, and wherever its fast
// path answers, encoding/json accepts the frame and decodes the same.
func FuzzDecodeServerFrame(f *testing.F) {
	for _, s := range serverFrames {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast ServerFrame
		if fastServerFrame(data, &fast) {
			var ref ServerFrame
			if err := json.Unmarshal(data, &ref); err != nil {
				t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, data)
			}
			if !reflect.DeepEqual(fast, ref) {
				t.Fatalf("fast path disagrees with encoding/json on %q:\n fast %+v\n json %+v", data, fast, ref)
			}
		}
		fr, err := DecodeServerFrame(data)
		if err == nil && fr.Type == "" {
			t.Fatal("accepted a frame without type")
		}
	})
}

// serverFrames are frames as the server sends them, and near misses that
// must leave the fast path to encoding/json.
var serverFrames = []string{
	`{"type":"message","cursor":1,"msg_id":"m","body":{"text":"x"}}`,
	`{"type":"message","cursor":12,"msg_id":"m0abc","chat_id":"g0xyz","seq":7,"from":"u1","from_device":"d1","ts":1765000000000,"body":{"text":"héllo 👍"}}`,
	`{"type":"message","cursor":3,"msg_id":"m","body":{"text":"a\"b\u00e9"}}`,
	`{"type":"message","cursor":3,"msg_id":"m","body":{"media_id":"f1","caption":"c","forwarded":true}}`,
	`{"type":"message","cursor":3,"msg_id":"m","body":{"deleted":true},"edited_ts":5,"expires_ts":9,"reply_to":"m2"}`,
	`{"type":"message","cursor":3,"reactions":[{"emoji":"👍","count":2,"user_ids":["u1","u2"]}]}`,
	`{"type":"message","cursor":3,"body":{"group":{"change":"add","user_ids":["u1"]}}}`,
	`{"type":"receipt","msg_ids":["a"]}`,
	`{"type":"receipt","cursor":4,"chat_id":"c","msg_ids":["a","b"],"status":"read","by":"u2","user_ids":["u2","u3"]}`,
	`{"type":"receipt","msg_ids":[]}`,
	`{"type":"sent","id":"c1","msg_id":"m1","chat_id":"c","seq":2,"ts":3}`,
	`{"type":"presence","user_id":"u1","online":false,"last_seen":"2026-12-06T01:02:03Z"}`,
	`{"type":"typing","chat_id":"c","user_id":"u","state":"typing"}`,
	`{"type":"error","id":"x","code":"rate_limited","message":"slow down","retry_after":2}`,
	`{"type":"pong"}`, `{}`, ` { "type" : "pong" } `, `{"type":"pong"} x`, `{"type":"pong",}`,
	`{"type":"message","type":"receipt"}`, `{"Type":"pong"}`, `{"type":null}`, `{"type":"a","seq":01}`,
	`{"type":"a","seq":-1}`, `{"type":"a","seq":1.5}`, `{"type":"a","seq":1e2}`, `{"type":"a","seq":1234567890123456789}`,
	`{"type":"a","online":truex}`, `{"type":"a","body":{"text":"x","text":"y"}}`, "{\"type\":\"\xff\"}",
	`{"type":"a","msg_ids":["a",]}`, `{"type":"a","last_seen":null}`, `{"type":"a","unknown":1}`,
}

func TestFastServerFrameAgreesWithJSON(t *testing.T) {
	fastOnes := 0
	for _, s := range serverFrames {
		var fast, ref ServerFrame
		fok := fastServerFrame([]byte(s), &fast)
		err := json.Unmarshal([]byte(s), &ref)
		if fok && (err != nil || !reflect.DeepEqual(fast, ref)) {
			t.Errorf("%s: fast path %+v, encoding/json %+v %v", s, fast, ref, err)
		}
		if fok {
			fastOnes++
		}
	}
	// The frames a client gets most must not fall back.
	for _, s := range serverFrames[:5] {
		if !fastServerFrame([]byte(s), &ServerFrame{}) && !strings.Contains(s, `\`) {
			t.Errorf("%s: fell back to encoding/json", s)
		}
	}
	for _, s := range serverFrames[7:15] {
		if !fastServerFrame([]byte(s), &ServerFrame{}) {
			t.Errorf("%s: fell back to encoding/json", s)
		}
	}
	t.Logf("%d of %d frames took the fast path", fastOnes, len(serverFrames))
}

func BenchmarkDecodeServerFrame(b *testing.B) {
	frame := []byte(serverFrames[1])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeServerFrame(frame); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var f ServerFrame
			if err := json.Unmarshal(frame, &f); err != nil {
				b.Fatal(err)
			}
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
