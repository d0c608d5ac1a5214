package cloudapi

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// A message template as a business registers it (POST
// /{waba_id}/message_templates) and as a template send fills it in.

// Template categories.
const (
	CategoryMarketing      = "MARKETING"
	CategoryUtility        = "UTILITY"
	CategoryAuthentication = "AUTHENTICATION"
)

// Template component types (upper case in definitions, as Meta writes
// them) and header formats.
const (
	DefHeader       = "HEADER"
	DefBody         = "BODY"
	DefFooter       = "FOOTER"
	DefButtons      = "BUTTONS"
	FormatText      = "TEXT"
	FormatImage     = "IMAGE"
	FormatVideo     = "VIDEO"
	FormatDocument  = "DOCUMENT"
	DefQuickReply   = "QUICK_REPLY"
	DefURL          = "URL"
	DefPhoneNumber  = "PHONE_NUMBER"
	StatusApproved  = "APPROVED"
	MaxTemplateBody = 1024
	MaxTemplateHead = 60
	MaxTemplateFoot = 60
	MaxButtonText   = 25
	MaxTemplateBtns = 10
	MaxPayload      = 1000 // a quick reply's payload, in characters
)

// TemplateDef is a registered template: its name, language, category
// and components.
type TemplateDef struct {
	Name       string         `json:"name"`
	Language   string         `json:"language"`
	Category   string         `json:"category"`
	Components []DefComponent `json:"components"`
}

// DefComponent is one part of a template definition.
type DefComponent struct {
	Type    string          `json:"type"`
	Format  string          `json:"format,omitempty"`
	Text    string          `json:"text,omitempty"`
	Buttons []DefButton     `json:"buttons,omitempty"`
	Example json.RawMessage `json:"example,omitempty"`
}

// DefButton is a template button: a quick reply (tapped, it comes back
// as a "button" message), a URL (which may end in {{1}}) or a phone
// number.
type DefButton struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	URL         string `json:"url,omitempty"`
	PhoneNumber string `json:"phone_number,omitempty"`
}

var (
	templateName = regexp.MustCompile(`^[a-z0-9_]{1,512}$`)
	languageCode = regexp.MustCompile(`^[a-z]{2,3}(_[A-Z]{2,4})?$`)
	placeholder  = regexp.MustCompile(`\{\{([0-9]{1,2})\}\}`)
)

// DecodeTemplateDef reads and checks a registration's body: the name
// (lower case, digits, underscores), the language ("en_US"), the
// category, and components with one BODY, placeholders {{1}}..{{n}} in
// order, and the Cloud API's lengths.
func DecodeTemplateDef(body []byte) (TemplateDef, *Error) {
	var d TemplateDef
	if err := json.Unmarshal(body, &d); err != nil {
		return TemplateDef{}, jsonError(err)
	}
	if d.Name == "" || d.Language == "" || d.Category == "" {
		return TemplateDef{}, ErrRequiredParameter("name, language and category are required")
	}
	if !templateName.MatchString(d.Name) {
		return TemplateDef{}, ErrParameterValueNotValid("name: lower-case letters, digits and underscores, up to 512")
	}
	if !languageCode.MatchString(d.Language) {
		return TemplateDef{}, ErrParameterValueNotValid(fmt.Sprintf("language %q is not a language code such as en_US", d.Language))
	}
	d.Category = strings.ToUpper(d.Category)
	switch d.Category {
	case CategoryMarketing, CategoryUtility, CategoryAuthentication:
	default:
		return TemplateDef{}, ErrParameterValueNotValid("category: MARKETING, UTILITY or AUTHENTICATION")
	}
	seen := map[string]bool{}
	for i := range d.Components {
		c := &d.Components[i]
		c.Type, c.Format = strings.ToUpper(c.Type), strings.ToUpper(c.Format)
		field := fmt.Sprintf("components[%d]", i)
		if seen[c.Type] {
			return TemplateDef{}, ErrInvalidParameter(field + ": one component of each type")
		}
		seen[c.Type] = true
		if e := c.check(field); e != nil {
			return TemplateDef{}, e
		}
	}
	if !seen[DefBody] {
		return TemplateDef{}, ErrRequiredParameter("components: a BODY is required")
	}
	return d, nil
}

func (c *DefComponent) check(field string) *Error {
	switch c.Type {
	case DefHeader:
		switch c.Format {
		case "", FormatText:
			c.Format = FormatText
			if e := checkTemplateText(field+".text", c.Text, MaxTemplateHead, 1); e != nil {
				return e
			}
		case FormatImage, FormatVideo, FormatDocument:
			if c.Text != "" {
				return ErrInvalidParameter(field + ": a media header has no text")
			}
		default:
			return ErrParameterValueNotValid(field + ".format: TEXT, IMAGE, VIDEO or DOCUMENT")
		}
	case DefBody:
		return checkTemplateText(field+".text", c.Text, MaxTemplateBody, 100)
	case DefFooter:
		return checkTemplateText(field+".text", c.Text, MaxTemplateFoot, 0)
	case DefButtons:
		if len(c.Buttons) == 0 || len(c.Buttons) > MaxTemplateBtns {
			return ErrParameterValueNotValid(fmt.Sprintf("%s.buttons: 1 to %d", field, MaxTemplateBtns))
		}
		texts := map[string]bool{}
		for j := range c.Buttons {
			b := &c.Buttons[j]
			bf := fmt.Sprintf("%s.buttons[%d]", field, j)
			b.Type = strings.ToUpper(b.Type)
			if e := checkRequired(bf+".text", b.Text, MaxButtonText); e != nil {
				return e
			}
			if texts[b.Text] {
				return ErrParameterValueNotValid(bf + ".text is another button's too")
			}
			texts[b.Text] = true
			switch b.Type {
			case DefQuickReply:
			case DefURL:
				u := strings.TrimSuffix(b.URL, "{{1}}")
				if !validLink(u) || strings.Contains(u, "{{") {
					return ErrParameterValueNotValid(bf + ".url: an http(s) URL, which may end in {{1}}")
				}
			case DefPhoneNumber:
				if _, ok := normalizePhone(b.PhoneNumber); !ok {
					return ErrParameterValueNotValid(bf + ".phone_number is not a phone number")
				}
			default:
				return ErrParameterValueNotValid(bf + ".type: QUICK_REPLY, URL or PHONE_NUMBER")
			}
		}
	default:
		return ErrParameterValueNotValid(field + ".type: HEADER, BODY, FOOTER or BUTTONS")
	}
	return nil
}

// checkTemplateText checks a component's text and that its placeholders
// run {{1}}, {{2}}, ... in order, at most maxParams of them.
func checkTemplateText(field, s string, max, maxParams int) *Error {
	if e := checkRequired(field, s, max); e != nil {
		return e
	}
	ms := placeholder.FindAllStringSubmatch(s, -1)
	if len(ms) > maxParams {
		return ErrParameterValueNotValid(fmt.Sprintf("%s: at most %d placeholders", field, maxParams))
	}
	for i, m := range ms {
		if n, _ := strconv.Atoi(m[1]); n != i+1 {
			return ErrParameterValueNotValid(fmt.Sprintf("%s: placeholders go {{1}}, {{2}}, ... in order", field))
		}
	}
	return nil
}

// Params is how many {{n}} s holds.
func Params(s string) int { return len(placeholder.FindAllString(s, -1)) }

// Rendered is a template filled in for one send.
type Rendered struct {
	Header      string // a text header
	HeaderKind  string // image, video or document: a media header
	HeaderMedia *Media
	Body        string
	Footer      string
	// QuickReplies are the quick-reply buttons: ID is the send's payload
	// for that button, or its text when the send gives none.
	QuickReplies []Reply
	// Links are the URL and phone-number buttons, as "text: target".
	Links []string
}

// Render fills def in with the send's components: each {{n}} of the
// header and body from that component's parameters (their number must
// match: 132000), a media header from its one parameter, quick replies'
// payloads and URL buttons' suffixes by button index.
func (d TemplateDef) Render(send *Template) (Rendered, *Error) {
	byType := map[string]Component{}
	buttons := map[int]Component{}
	for _, c := range send.Components {
		if c.Type == ComponentButton {
			if _, dup := buttons[int(*c.Index)]; dup {
				return Rendered{}, ErrInvalidParameter(fmt.Sprintf("button %d is given twice", *c.Index))
			}
			buttons[int(*c.Index)] = c
			continue
		}
		if _, dup := byType[c.Type]; dup {
			return Rendered{}, ErrInvalidParameter(fmt.Sprintf("the %s is given twice", c.Type))
		}
		byType[c.Type] = c
	}
	var r Rendered
	for _, c := range d.Components {
		switch c.Type {
		case DefHeader:
			p := byType[ComponentHeader].Parameters
			if c.Format != FormatText {
				kind := strings.ToLower(c.Format)
				if len(p) != 1 || p[0].Type != kind {
					return Rendered{}, ErrTemplateParamCount(fmt.Sprintf("the header takes one %s parameter", kind))
				}
				r.HeaderKind = kind
				r.HeaderMedia = map[string]*Media{ParameterImage: p[0].Image, ParameterVideo: p[0].Video, ParameterDocument: p[0].Document}[kind]
				continue
			}
			s, e := fill("header", c.Text, p)
			if e != nil {
				return Rendered{}, e
			}
			r.Header = s
		case DefBody:
			s, e := fill("body", c.Text, byType[ComponentBody].Parameters)
			if e != nil {
				return Rendered{}, e
			}
			r.Body = s
		case DefFooter:
			r.Footer = c.Text
		case DefButtons:
			for i, b := range c.Buttons {
				sent, given := buttons[i]
				switch b.Type {
				case DefQuickReply:
					id := b.Text
					if given && sent.SubType == ButtonQuickReply && len(sent.Parameters) == 1 {
						id = sent.Parameters[0].Payload
					}
					if runes(id) > MaxPayload {
						return Rendered{}, ErrParameterValueNotValid(fmt.Sprintf("button %d's payload is over %d characters", i, MaxPayload))
					}
					for _, q := range r.QuickReplies {
						if q.ID == id {
							// A tap must say which button it was.
							return Rendered{}, ErrParameterValueNotValid(fmt.Sprintf("button %d's payload %q is another button's too", i, id))
						}
					}
					r.QuickReplies = append(r.QuickReplies, Reply{ID: id, Title: b.Text})
				case DefURL:
					u := b.URL
					if strings.HasSuffix(u, "{{1}}") {
						if !given || sent.SubType != ButtonURL || len(sent.Parameters) != 1 {
							return Rendered{}, ErrTemplateParamCount(fmt.Sprintf("button %d's URL takes one text parameter", i))
						}
						u = strings.TrimSuffix(u, "{{1}}") + sent.Parameters[0].Text
					}
					r.Links = append(r.Links, b.Text+": "+u)
				case DefPhoneNumber:
					r.Links = append(r.Links, b.Text+": "+b.PhoneNumber)
				}
			}
		}
	}
	for i := range buttons {
		if i >= len(d.buttons()) {
			return Rendered{}, ErrTemplateParamCount(fmt.Sprintf("the template has no button %d", i))
		}
	}
	if _, ok := byType[ComponentHeader]; ok && d.component(DefHeader) == nil {
		return Rendered{}, ErrTemplateParamCount("the template has no header")
	}
	return r, nil
}

func (d TemplateDef) component(typ string) *DefComponent {
	for i := range d.Components {
		if d.Components[i].Type == typ {
			return &d.Components[i]
		}
	}
	return nil
}

func (d TemplateDef) buttons() []DefButton {
	if c := d.component(DefButtons); c != nil {
		return c.Buttons
	}
	return nil
}

// fill replaces text's {{n}} with params' texts; their counts must match.
func fill(part, text string, params []Parameter) (string, *Error) {
	if n := Params(text); n != len(params) {
		return "", ErrTemplateParamCount(fmt.Sprintf("the %s takes %d parameters; %d given", part, n, len(params)))
	}
	for _, p := range params {
		if p.Type != ParameterText {
			return "", ErrTemplateParamCount(fmt.Sprintf("the %s takes text parameters", part))
		}
	}
	return placeholder.ReplaceAllStringFunc(text, func(m string) string {
		n, _ := strconv.Atoi(m[2 : len(m)-2])
		return params[n-1].Text
	}), nil
}
