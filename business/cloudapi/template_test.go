package cloudapi

import (
	"strings"
	"testing"
)

func decodeDef(t *testing.T, body string) TemplateDef {
	t.Helper()
	d, e := DecodeTemplateDef([]byte(body))
	if e != nil {
		t.Fatalf("decode %s: %v", body, e)
	}
	return d
}

func TestTemplateRender(t *testing.T) {
	d := decodeDef(t, `{"name":"order","language":"en_US","category":"utility","components":[
		{"type":"header","text":"Order {{1}}"},
		{"type":"BODY","text":"Hi {{1}}, order {{2}} ships."},
		{"type":"FOOTER","text":"Acme"},
		{"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"Track"},{"type":"QUICK_REPLY","text":"Stop"},
			{"type":"URL","text":"Open","url":"https://a.example/o/{{1}}"},{"type":"PHONE_NUMBER","text":"Call","phone_number":"+14155550100"}]}]}`)
	if d.Category != CategoryUtility || d.Components[0].Format != FormatText {
		t.Fatalf("canonical: %+v", d)
	}
	idx := func(i int) *ButtonIndex { b := ButtonIndex(i); return &b }
	send := &Template{Name: "order", Components: []Component{
		{Type: ComponentHeader, Parameters: []Parameter{{Type: ParameterText, Text: "7"}}},
		// A parameter that looks like a placeholder stays as it is.
		{Type: ComponentBody, Parameters: []Parameter{{Type: ParameterText, Text: "{{2}}"}, {Type: ParameterText, Text: "7"}}},
		{Type: ComponentButton, SubType: ButtonQuickReply, Index: idx(1), Parameters: []Parameter{{Type: ParameterPayload, Payload: "stop-7"}}},
		{Type: ComponentButton, SubType: ButtonURL, Index: idx(2), Parameters: []Parameter{{Type: ParameterText, Text: "7"}}},
	}}
	r, e := d.Render(send)
	if e != nil {
		t.Fatal(e)
	}
	if r.Header != "Order 7" || r.Body != "Hi {{2}}, order 7 ships." || r.Footer != "Acme" ||
		len(r.QuickReplies) != 2 || r.QuickReplies[0] != (Reply{ID: "Track", Title: "Track"}) || r.QuickReplies[1] != (Reply{ID: "stop-7", Title: "Stop"}) ||
		strings.Join(r.Links, "|") != "Open: https://a.example/o/7|Call: +14155550100" {
		t.Fatalf("rendered: %+v", r)
	}

	for name, c := range map[string]struct {
		send *Template
		code int
	}{
		"too few body parameters": {&Template{Components: []Component{send.Components[0], {Type: ComponentBody, Parameters: send.Components[1].Parameters[:1]}, send.Components[3]}}, 132000},
		"no URL suffix":           {&Template{Components: send.Components[:2]}, 132000},
		"a button twice":          {&Template{Components: append(append([]Component{}, send.Components...), send.Components[2])}, 100},
		"the body twice":          {&Template{Components: append(append([]Component{}, send.Components...), send.Components[1])}, 100},
		"a payload that is another button's": {&Template{Components: append(append([]Component{}, send.Components[:2]...), send.Components[3],
			Component{Type: ComponentButton, SubType: ButtonQuickReply, Index: idx(1), Parameters: []Parameter{{Type: ParameterPayload, Payload: "Track"}}})}, 131009},
		"a payload too long": {&Template{Components: append(append([]Component{}, send.Components[:2]...), send.Components[3],
			Component{Type: ComponentButton, SubType: ButtonQuickReply, Index: idx(0), Parameters: []Parameter{{Type: ParameterPayload, Payload: strings.Repeat("é", MaxPayload+1)}}})}, 131009},
		"a button the template lacks": {&Template{Components: append(append([]Component{}, send.Components...),
			Component{Type: ComponentButton, SubType: ButtonQuickReply, Index: idx(7), Parameters: []Parameter{{Type: ParameterPayload, Payload: "x"}}})}, 132000},
	} {
		if _, e := d.Render(c.send); e == nil || e.Code != c.code {
			t.Errorf("%s: %v, want code %d", name, e, c.code)
		}
	}
}

func TestTemplateDefRefusals(t *testing.T) {
	for _, body := range []string{
		`{"name":"x","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"{{2}}"}]}`,
		`{"name":"x","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"a"},{"type":"BODY","text":"b"}]}`,
		`{"name":"x","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"a"},{"type":"FOOTER","text":"{{1}}"}]}`,
		`{"name":"x","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"a"},{"type":"HEADER","text":"{{1}} {{2}}"}]}`,
		`{"name":"x","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"a"},{"type":"HEADER","format":"IMAGE","text":"t"}]}`,
		`{"name":"x","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"a"},{"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"A"},{"type":"QUICK_REPLY","text":"A"}]}]}`,
		`{"name":"x","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"a"},{"type":"BUTTONS","buttons":[{"type":"PHONE_NUMBER","text":"A","phone_number":"call me"}]}]}`,
		`{"name":"x","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"a"},{"type":"WIDGET"}]}`,
		`{"name":"x","language":"en_US","category":"UTILITY"}`,
		`{"name":"x","language":"en_US"`,
	} {
		if _, e := DecodeTemplateDef([]byte(body)); e == nil {
			t.Errorf("accepted %s", body)
		}
	}
}
