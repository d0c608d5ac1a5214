package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tern-im/tern/business"
	"github.com/tern-im/tern/business/cloudapi"
	"github.com/tern-im/tern/chat"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// The Cloud API's endpoints for businesses (issue 13): a business's
// systems speak as its API device, through the chat core. Errors are
// Graph's ({"error": {message, type, code, error_data, fbtrace_id}}), so
// that Cloud API SDKs read them.

// graphPath is a Cloud API path: an optional Graph version (real SDKs
// send both v21.0/... and the bare form), a numeric object id (a
// phone_number_id), and an edge. Graph's paths start with a wildcard,
// which Go's mux cannot hold beside prefix routes such as /media/files/:
// the server matches them before the mux instead.
var graphPath = regexp.MustCompile(`^/(?:(v[0-9]{1,3}\.[0-9]{1,2})/)?([0-9]{1,20})/(messages|subscribed_apps|media|message_templates)$`)

// graphMedia is a Cloud API media object's path: Tern's media id in
// place of Graph's numeric one, and /content, the download its URL names
// (which, like Meta's, needs the bearer token).
var graphMedia = regexp.MustCompile(`^/(?:(v[0-9]{1,3}\.[0-9]{1,2})/)?(` + store.PrefixMedia + `[0-9a-v]{26})(/content)?$`)

// graphAny is any path in the Graph API's space: one that starts with a
// Graph version or a numeric id. Tern's own paths start with /v1/ and
// names, so the two never meet.
var graphAny = regexp.MustCompile(`^/(?:v[0-9]{1,3}\.[0-9]{1,2}|[0-9]{1,20})(?:/|$)`)

// businessRoute returns the Cloud API handler for r, if r is one; a
// Graph path Tern does not serve is answered in Graph's shape, which the
// SDKs read.
func (s *Server) businessRoute(r *http.Request) (http.Handler, bool) {
	if m := graphMedia.FindStringSubmatch(r.URL.Path); m != nil {
		return s.mediaRoute(r, m[1], m[2], m[3] != ""), true
	}
	m := graphPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		if !graphAny.MatchString(r.URL.Path) {
			return nil, false
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, strings.Trim(r.URL.Path, "/")))
		}), true
	}
	type route struct {
		method, edge, idName string
		h                    func(w http.ResponseWriter, r *http.Request, b store.Business)
	}
	for _, rt := range []route{
		{http.MethodPost, "messages", "phone_number_id", s.handleBizMessages},
		{http.MethodPost, "subscribed_apps", "waba_id", s.handleSubscribe},
		{http.MethodGet, "subscribed_apps", "waba_id", s.handleSubscriptions},
		{http.MethodDelete, "subscribed_apps", "waba_id", s.handleUnsubscribe},
		{http.MethodPost, "media", "phone_number_id", s.handleBizUpload},
		{http.MethodPost, "message_templates", "waba_id", s.handleTemplateCreate},
		{http.MethodGet, "message_templates", "waba_id", s.handleTemplates},
		{http.MethodDelete, "message_templates", "waba_id", s.handleTemplateDelete},
	} {
		if rt.edge == m[3] && rt.method == r.Method {
			r.SetPathValue("version", m[1])
			r.SetPathValue(rt.idName, m[2])
			return s.instrument("/{version}/{"+rt.idName+"}/"+rt.edge, s.bizAuthed(rt.h)), true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, m[2]))
	}), true
}

// mediaRoute is the handler of a media object's path: GET answers its
// description with a URL, DELETE deletes it, GET /content is the file.
func (s *Server) mediaRoute(r *http.Request, version, id string, content bool) http.Handler {
	r.SetPathValue("version", version)
	r.SetPathValue("media_id", id)
	var h func(w http.ResponseWriter, r *http.Request, b store.Business)
	pattern := "/{version}/{media_id}"
	switch {
	case content && r.Method == http.MethodGet:
		h, pattern = s.handleBizMediaContent, pattern+"/content"
	case !content && r.Method == http.MethodGet:
		h = s.handleBizMedia
	case !content && r.Method == http.MethodDelete:
		h = s.handleBizMediaDelete
	default:
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, id))
		})
	}
	return s.instrument(pattern, s.bizAuthed(h))
}

// window is the Cloud API's customer-service window: free-form messages
// only within 24 hours of the customer's last message.
const window = 24 * time.Hour

// maxBizBody bounds a Cloud API request body: the largest valid one (an
// interactive list) is a few KiB.
const maxBizBody = 64 << 10

func writeGraph(w http.ResponseWriter, e *cloudapi.Error) {
	if e.FBTraceID == "" {
		e.FBTraceID = cloudapi.NewTraceID()
	}
	b, err := json.Marshal(e)
	if err != nil {
		b = []byte(`{"error":{"message":"internal error","type":"OAuthException","code":1}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.HTTPStatus())
	_, _ = w.Write(b)
}

// bizAuthed resolves the business from the bearer token, and checks that
// the path's phone_number_id is that business's.
func (s *Server) bizAuthed(h func(w http.ResponseWriter, r *http.Request, b store.Business)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hdr := r.Header.Get("Authorization")
		if len(hdr) < 7 || !strings.EqualFold(hdr[:7], "bearer ") {
			writeGraph(w, cloudapi.ErrInvalidAccessToken("An active access token must be used to query information about the current user."))
			return
		}
		id, secret, err := business.ParseToken(strings.TrimSpace(hdr[7:]))
		if err != nil {
			writeGraph(w, cloudapi.ErrInvalidAccessToken("Invalid OAuth access token - Cannot parse access token"))
			return
		}
		ctx := r.Context()
		t, err := s.st.BusinessToken(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Error("business: token lookup failed", "err", err)
			writeGraph(w, cloudapi.NewError(2, "Service temporarily unavailable", ""))
			return
		}
		if err != nil || !business.CheckToken(t.Hash, secret) {
			writeGraph(w, cloudapi.ErrInvalidAccessToken("Error validating access token: the token is not valid."))
			return
		}
		b, err := s.st.Business(ctx, t.UserID)
		if errors.Is(err, store.ErrNotFound) {
			writeGraph(w, cloudapi.ErrInvalidAccessToken("Error validating access token: the business is gone."))
			return
		}
		if err != nil {
			s.log.Error("business: lookup failed", "err", err)
			writeGraph(w, cloudapi.NewError(2, "Service temporarily unavailable", ""))
			return
		}
		if pnid := r.PathValue("phone_number_id"); pnid != "" && pnid != b.PhoneNumberID {
			writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, pnid))
			return
		}
		if waba := r.PathValue("waba_id"); waba != "" && waba != b.WABAID {
			writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, waba))
			return
		}
		if r.PathValue("phone_number_id") == "" && r.PathValue("waba_id") == "" && r.PathValue("media_id") == "" {
			writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, r.URL.Path))
			return
		}
		h(w, r, b)
	}
}

func (s *Server) handleBizMessages(w http.ResponseWriter, r *http.Request, b store.Business) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBizBody+1))
	if err != nil {
		writeGraph(w, cloudapi.ErrInvalidParameter("the request body could not be read"))
		return
	}
	if len(body) > maxBizBody {
		writeGraph(w, cloudapi.ErrInvalidParameter("the request body is over 64 KiB"))
		return
	}
	mb, gerr := cloudapi.DecodeMessagesBody(body)
	if gerr != nil {
		writeGraph(w, gerr)
		return
	}
	actor := chat.Actor{UserID: b.UserID, DeviceID: b.DeviceID}
	if mb.Read != nil {
		s.bizRead(w, r, b, actor, mb.Read)
		return
	}
	s.bizSend(w, r, b, actor, mb.Send)
}

// bizTarget finds the message a Cloud API id names, in one of the
// business's own direct chats.
func (s *Server) bizTarget(ctx context.Context, b store.Business, wamid string) (store.Message, *cloudapi.Error) {
	chatID, msgID, ok := business.ParseMessageID(wamid)
	if !ok || !slices.Contains(directMembers(chatID), b.UserID) {
		return store.Message{}, cloudapi.ErrParameterValueNotValid("message_id " + wamid + " is not a message of this business's chats")
	}
	m, err := s.st.Message(ctx, chatID, msgID)
	if err != nil {
		return store.Message{}, cloudapi.ErrParameterValueNotValid("message_id " + wamid + " is not a message of this business's chats")
	}
	return m, nil
}

func directMembers(chatID string) []string {
	a, b, ok := store.DirectChatMembers(chatID)
	if !ok {
		return nil
	}
	return []string{a, b}
}

// bizRead marks the customer's messages read up to the one named: the
// customer sees blue ticks, as from a person.
func (s *Server) bizRead(w http.ResponseWriter, r *http.Request, b store.Business, actor chat.Actor, req *cloudapi.ReadRequest) {
	m, gerr := s.bizTarget(r.Context(), b, req.MessageID)
	if gerr != nil {
		writeGraph(w, gerr)
		return
	}
	if _, err := s.chat.Read(r.Context(), actor, m.ChatID, m.Seq); err != nil {
		s.writeGraphErr(w, r, err)
		return
	}
	if req.TypingIndicator != nil {
		// The Cloud API shows it until the reply or 25 seconds; Tern's
		// clients end a typing state by their own timeout, as for a
		// person who stops typing.
		if err := s.chat.Typing(r.Context(), actor, m.ChatID, wire.TypingStarted); err != nil {
			s.writeGraphErr(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, cloudapi.SuccessResponse{Success: true})
}

func (s *Server) bizSend(w http.ResponseWriter, r *http.Request, b store.Business, actor chat.Actor, req *cloudapi.SendRequest) {
	ctx := r.Context()
	// The rate, then the window, before anything that depends on the
	// number: while the window rule is on, a number without an account
	// is answered like a customer who never wrote, by the same path, so
	// that which numbers have accounts is not the business's to learn.
	if wait := s.bizRate(b).take(time.Now()); wait > 0 {
		writeGraph(w, cloudapi.ErrRateLimitHit())
		return
	}
	customer, err := s.st.UserByPhone(ctx, req.To)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.writeGraphErr(w, r, err)
		return
	}
	chatID := ""
	if known {
		chatID = store.DirectChatID(b.UserID, customer.ID)
	}
	// Templates are what a business may send outside the window.
	if b.WindowRule && req.Type != cloudapi.MessageTypeTemplate {
		open := false
		if known {
			if open, err = s.windowOpen(ctx, b, customer.ID, chatID); err != nil {
				s.writeGraphErr(w, r, err)
				return
			}
		}
		if !open {
			writeGraph(w, cloudapi.ErrReEngagement())
			return
		}
	}
	var tpl cloudapi.Rendered
	if req.Type == cloudapi.MessageTypeTemplate {
		// Before the number matters: a template that does not fit is
		// refused alike for every number.
		var gerr *cloudapi.Error
		if tpl, gerr = s.renderTemplate(ctx, b, req.Template); gerr != nil {
			writeGraph(w, gerr)
			return
		}
	}
	if !known {
		// A template (which may reach anyone) to a number without an
		// account: undeliverable, as the Cloud API's failed status says.
		writeGraph(w, cloudapi.ErrUndeliverable())
		return
	}
	// Echoed: the send comes back through the business's queue as its
	// "sent" status, in order with the rest.
	in := chat.SendInput{ClientID: rand.Text(), To: customer.ID, Echo: true}
	switch req.Type {
	case cloudapi.MessageTypeText:
		in.Body = &wire.Body{Text: req.Text.Body}
	case cloudapi.MessageTypeReaction:
		m, gerr := s.bizTarget(ctx, b, req.Reaction.MessageID)
		if gerr == nil && m.ChatID != chatID {
			gerr = cloudapi.ErrParameterValueNotValid("the reaction's message is in another chat")
		}
		if gerr != nil {
			writeGraph(w, gerr)
			return
		}
		in.Body = &wire.Body{Reaction: &wire.ReactionAction{MsgID: m.ID, Emoji: req.Reaction.Emoji}}
	case cloudapi.MessageTypeImage, cloudapi.MessageTypeVideo, cloudapi.MessageTypeAudio, cloudapi.MessageTypeDocument, cloudapi.MessageTypeSticker:
		m := map[string]*cloudapi.Media{cloudapi.MessageTypeImage: req.Image, cloudapi.MessageTypeVideo: req.Video,
			cloudapi.MessageTypeAudio: req.Audio, cloudapi.MessageTypeDocument: req.Document, cloudapi.MessageTypeSticker: req.Sticker}[req.Type]
		// A link is fetched now (up to linkTimeout), or an upload copied as
		// another kind: past the listener's usual write timeout.
		defer extendDeadlines(w, linkTimeout+30*time.Second, false)()
		body, gerr := s.bizMediaBody(ctx, b, req.Type, m)
		if gerr != nil {
			writeGraph(w, gerr)
			return
		}
		in.Body = body
	case cloudapi.MessageTypeInteractive:
		in.Body = bizInteractiveBody(req.Interactive)
	case cloudapi.MessageTypeTemplate:
		defer extendDeadlines(w, linkTimeout+30*time.Second, false)() // a media header's link
		body, gerr := s.templateBody(ctx, b, req.Template.Name, tpl)
		if gerr != nil {
			writeGraph(w, gerr)
			return
		}
		in.Body = body
	default:
		writeGraph(w, cloudapi.ErrUnsupportedMessageType())
		return
	}
	in.Business = true
	if req.Context != nil && req.Context.MessageID != "" {
		m, gerr := s.bizTarget(ctx, b, req.Context.MessageID)
		if gerr == nil && m.ChatID != chatID {
			gerr = cloudapi.ErrParameterValueNotValid("context.message_id is in another chat")
		}
		if gerr != nil {
			writeGraph(w, gerr)
			return
		}
		in.ReplyTo = m.ID
	}
	if req.BizOpaqueCallbackData != "" {
		// Kept before the send: the "sent" status may be posted the
		// moment the message is stored.
		in.MsgID = store.NewID(store.PrefixMessage)
		if err := s.st.PutCallbackData(ctx, b.UserID, in.MsgID, req.BizOpaqueCallbackData, time.Now()); err != nil {
			s.writeGraphErr(w, r, err)
			return
		}
	}
	sent, err := s.chat.Send(ctx, actor, in)
	if err != nil {
		s.writeGraphErr(w, r, err)
		return
	}
	s.metrics.messagesSent.Inc()
	s.stats.sent.Add(1)
	writeJSON(w, http.StatusOK, cloudapi.NewSendResponse(*req, business.MessageID(sent.Message.ChatID, sent.Message.ID)))
}

// windowOpen reports whether customerID wrote to the business in the
// last 24 hours. The stored window (raised as the business's queue is
// read) answers most sends with one point read; while it lags behind the
// queue, the chat's newest page decides.
func (s *Server) windowOpen(ctx context.Context, b store.Business, customerID, chatID string) (bool, error) {
	since := time.Now().Add(-window).UnixMilli()
	if ts, err := s.st.Window(ctx, b.UserID, customerID); err != nil || ts >= since {
		return err == nil, err
	}
	msgs, err := s.st.History(ctx, chatID, 0, 50)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	for _, m := range msgs {
		if m.TS < since {
			return false, nil
		}
		if m.From == customerID && customerWrote(&m) {
			return true, nil
		}
	}
	return false, nil
}

// writeGraphErr answers a chat-core or store error in Graph's shape.
func (s *Server) writeGraphErr(w http.ResponseWriter, r *http.Request, err error) {
	we := asWireError(err)
	switch we.Code {
	case wire.CodeForbidden, wire.CodeNotFound:
		// Blocked by the customer, or privacy: as undeliverable, which
		// is what the Cloud API says of a number it cannot reach.
		writeGraph(w, cloudapi.ErrUndeliverable())
	case wire.CodeTooLarge, wire.CodeBadRequest:
		writeGraph(w, cloudapi.ErrParameterValueNotValid(we.Message))
	case wire.CodeRateLimited:
		writeGraph(w, cloudapi.ErrRateLimitHit())
	case wire.CodeConflict:
		writeGraph(w, cloudapi.ErrParameterValueNotValid(we.Message))
	default:
		s.log.Error("business request failed", "path", r.URL.Path, "err", err)
		writeGraph(w, cloudapi.NewError(2, "Service temporarily unavailable", ""))
	}
}

// customerWrote reports whether a customer's log entry opens the window:
// a message or a reaction, as on the queue's side; not an edit, a
// deletion or a reaction taken back.
func customerWrote(m *store.Message) bool {
	if m.Kind == "" {
		return true
	}
	var b wire.Body
	return m.Kind == store.KindAction && json.Unmarshal(m.Body, &b) == nil && b.Reaction != nil && b.Reaction.Emoji != ""
}

// bizRate is business b's send bucket on this node: its rate shared
// among the nodes up (each takes its part of the number's traffic, as the
// load balancer spreads it).
func (s *Server) bizRate(b store.Business) *bucket {
	rate := float64(max(b.RatePerSecond, 1)) / float64(max(s.stats.nodesUp.Load(), 1))
	if v, ok := s.bizRates.Load(b.UserID); ok {
		if bk := v.(*bucket); bk.rate == rate {
			return bk
		}
	}
	bk := newBucket(rate, max(int(rate), 1))
	if v, loaded := s.bizRates.LoadOrStore(b.UserID, &bk); loaded && v.(*bucket).rate == rate {
		return v.(*bucket)
	}
	s.bizRates.Store(b.UserID, &bk) // the rate changed: a new bucket
	return &bk
}

// handleSubscribe is the Cloud API's per-WABA webhook override: `POST
// /{waba_id}/subscribed_apps` with {override_callback_uri, verify_token}
// (JSON or a form) sets the business's webhook once the URL passed the
// verification; without them it keeps the webhook it has.
func (s *Server) handleSubscribe(w http.ResponseWriter, r *http.Request, b store.Business) {
	var req struct {
		URL   string `json:"override_callback_uri"`
		Token string `json:"verify_token"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBizBody))
	if err != nil {
		writeGraph(w, cloudapi.ErrInvalidParameter("the request body could not be read"))
		return
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if len(body) > 0 && json.Unmarshal(body, &req) != nil {
			writeGraph(w, cloudapi.ErrInvalidParameter("the body is not JSON"))
			return
		}
	} else if q, err := url.ParseQuery(string(body)); err == nil {
		req.URL, req.Token = q.Get("override_callback_uri"), q.Get("verify_token")
	}
	if req.URL == "" && req.Token == "" {
		writeJSON(w, http.StatusOK, cloudapi.SuccessResponse{Success: true})
		return
	}
	if req.URL == "" || req.Token == "" {
		writeGraph(w, cloudapi.ErrRequiredParameter("override_callback_uri and verify_token go together"))
		return
	}
	if err := s.checkWebhook(r.Context(), req.URL, req.Token); err != nil {
		writeGraph(w, cloudapi.ErrParameterValueNotValid(asWireError(err).Message))
		return
	}
	// Read again: the check took seconds, and an operator may have
	// changed the business's settings meanwhile (the store replaces
	// records whole).
	b, err = s.st.Business(r.Context(), b.UserID)
	if err != nil {
		s.writeGraphErr(w, r, err)
		return
	}
	b.WebhookURL, b.VerifyToken, b.WebhookVerifiedAt = req.URL, req.Token, time.Now().UTC()
	if err := s.st.UpdateBusiness(r.Context(), b); err != nil {
		s.writeGraphErr(w, r, err)
		return
	}
	s.audit(r.Context(), "business:"+b.UserID, "webhook_set", b.UserID, req.URL, clientIP(r, s.cfg.TrustProxy))
	writeJSON(w, http.StatusOK, cloudapi.SuccessResponse{Success: true})
}

// handleSubscriptions lists the business's subscription, as Graph does.
func (s *Server) handleSubscriptions(w http.ResponseWriter, _ *http.Request, b store.Business) {
	data := []map[string]any{}
	if b.WebhookURL != "" {
		data = append(data, map[string]any{"whatsapp_business_api_data": map[string]string{"id": b.WABAID, "name": b.Name},
			"override_callback_uri": b.WebhookURL})
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

// handleUnsubscribe stops the business's webhooks (its queue keeps what
// comes meanwhile, for when it subscribes again).
func (s *Server) handleUnsubscribe(w http.ResponseWriter, r *http.Request, b store.Business) {
	b, err := s.st.Business(r.Context(), b.UserID)
	if err != nil {
		s.writeGraphErr(w, r, err)
		return
	}
	b.WebhookURL, b.VerifyToken, b.WebhookVerifiedAt = "", "", time.Time{}
	if err := s.st.UpdateBusiness(r.Context(), b); err != nil {
		s.writeGraphErr(w, r, err)
		return
	}
	s.audit(r.Context(), "business:"+b.UserID, "webhook_removed", b.UserID, "", clientIP(r, s.cfg.TrustProxy))
	writeJSON(w, http.StatusOK, cloudapi.SuccessResponse{Success: true})
}
