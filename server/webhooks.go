package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tern-im/tern/business"
	"github.com/tern-im/tern/business/cloudapi"
	"github.com/tern-im/tern/chat"
	"github.com/tern-im/tern/internal/health"
	"github.com/tern-im/tern/internal/safehttp"
	"github.com/tern-im/tern/internal/seal"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// Webhook delivery (issue 13; docs/architecture.md, "Business API"). A
// business's queue is its API device's inbox: customers' messages, the
// business's own sends (echoed) and the receipts of them. One node at a
// time holds a business's lease and posts its queue in order, one event
// per POST, acking each after a 2xx: the ack is also what gives the
// customer ✓✓. The lease is renewed once a quarter of it went by (checked
// before every POST), every POST ends within it, and a node that cannot
// renew it stops at once: two nodes never post one queue. A
// failure stops the queue (order is the contract) and backs off, doubling
// from WebhookRetry up to an hour, while the node keeps the lease (so the
// backoff holds across the cluster); an event older than WebhookGiveUp
// that fails is dropped and logged. Each business is posted by its own
// goroutine, a few at a time, so a slow receiver delays only its own
// business.

const (
	webhookTimeout     = 10 * time.Second
	webhookLeaseDef    = 6 * webhookTimeout // several POSTs' worth
	webhookPage        = 50
	webhookMaxDelay    = time.Hour
	webhookGiveUpDef   = 7 * 24 * time.Hour
	webhookConcurrency = 8
	webhookRounds      = 20               // pages a worker posts before it lets another business's turn come
	webhookTurn        = 30 * time.Second // and the time it may take at most, give or take a POST
	// webhookMinLease bounds --webhook-lease: each POST gets at most the
	// lease left less a second, and a POST needs some time.
	webhookMinLease = 5 * time.Second
)

// webhookState is what a node remembers of one business's queue while
// it holds its lease.
type webhookState struct {
	busy       bool      // a goroutine posts it now
	url        string    // the webhook the failures were of
	attempts   int       // failures in a row
	next       time.Time // no POST before
	leaseUntil time.Time // this node's lease, as it last took it
	again      bool      // woken while busy: look at the queue once more
}

// webhookLoop hands the queues this node can hold to worker goroutines:
// every business's at each WebhookPoll, and a business's at once when
// this node stores an event for it while it holds the queue (a wake), so
// that on one node, or on the node that holds the queue, a customer's
// message is posted without waiting for the next poll.
func (s *Server) webhookLoop() {
	client := safehttp.NewClient(safehttp.Options{Timeout: webhookTimeout, AllowPrivate: s.cfg.WebhookAllowPrivate})
	var mu sync.Mutex
	states := map[string]*webhookState{}
	known := map[string]store.Business{} // by API device, as last listed (this goroutine's)
	workers := make(chan struct{}, webhookConcurrency)
	holder := s.cfg.NodeID + "/" + s.stats.boot
	// schedule starts a worker on b's queue, or has the running one look
	// again before it stops; false when the node stops.
	schedule := func(b store.Business, st *webhookState, woken bool) bool {
		mu.Lock()
		if st.busy {
			st.again = st.again || woken
			mu.Unlock()
			return true
		}
		st.busy = true
		mu.Unlock()
		select {
		case workers <- struct{}{}:
		case <-s.ctx.Done():
			return false
		}
		if !s.webhooks.start() {
			<-workers
			return false // stopping
		}
		go func() {
			defer s.webhooks.wg.Done()
			defer func() { <-workers }()
			// A busy queue is posted page after page, up to a bound in
			// pages and in time, so that its rate is not a page per poll;
			// then the worker lets the other businesses' turn come.
			turnEnds := time.Now().Add(webhookTurn)
			for round := 1; ; round++ {
				// The business as it is now (a wake's copy is a poll old,
				// and a turn takes a while): a webhook changed or removed
				// meanwhile is not posted to.
				fresh, err := s.st.Business(s.ctx, b.UserID)
				ok := err == nil && fresh.WebhookURL == b.WebhookURL && !fresh.WebhookVerifiedAt.IsZero()
				more := false
				if ok {
					b = fresh
					more = s.deliverQueue(client, holder, b, st, &mu, turnEnds)
				}
				// Whether to stop and busy cleared under one lock: a wake
				// in between would be lost till the next poll.
				mu.Lock()
				again := st.again
				st.again = false
				if !ok || !more && !again || round >= webhookRounds || s.ctx.Err() != nil || s.draining.Load() || time.Now().After(turnEnds) {
					st.busy = false
					mu.Unlock()
					return
				}
				mu.Unlock()
			}
		}()
		return true
	}
	stateOf := func(b store.Business) *webhookState {
		mu.Lock()
		defer mu.Unlock()
		st := states[b.UserID]
		if st == nil {
			st = &webhookState{}
			states[b.UserID] = st
		}
		return st
	}
	tick := func() {
		devices := map[string]bool{}
		for after := ""; ; {
			bs, err := s.st.ListBusinesses(s.ctx, after, 200)
			if err != nil {
				if s.ctx.Err() == nil {
					s.log.Warn("webhooks: listing businesses failed", "err", err)
				}
				return
			}
			for _, b := range bs {
				devices[b.DeviceID] = true
				known[b.DeviceID] = b
				if b.WebhookURL == "" || b.WebhookVerifiedAt.IsZero() {
					s.stats.setHookFailure(b.UserID, nil) // nothing to post to, nothing failing
					continue
				}
				if !schedule(b, stateOf(b), false) {
					return
				}
			}
			if len(bs) < 200 {
				// The whole list read: publish it, with any device made
				// here meanwhile (businesses are not deleted).
				s.mergeBizDevices(devices)
				return
			}
			after = bs[len(bs)-1].UserID
		}
	}
	tick()
	t := time.NewTicker(s.cfg.WebhookPoll)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			tick()
		case device := <-s.hookWakes:
			b, ok := known[device]
			if !ok || b.WebhookURL == "" || b.WebhookVerifiedAt.IsZero() {
				continue
			}
			st := stateOf(b)
			mu.Lock()
			mine := time.Now().Before(st.leaseUntil)
			mu.Unlock()
			// Only a queue this node holds: another node's would cost a
			// refused lease per event; its holder polls it.
			if mine && !schedule(b, st, true) {
				return
			}
		}
	}
}

// wakeWebhooks tells the webhook loop that device, a business's API
// device, has a new event; a wake that finds the loop busy is dropped
// (the next poll finds the event).
func (s *Server) wakeWebhooks(device string) {
	select {
	case s.hookWakes <- device:
	default:
	}
}

// holdLease takes or renews b's lease now; a lease newly taken (not held
// by this node a moment ago) starts with no failures remembered, since
// another node may have posted the queue meanwhile.
func (s *Server) holdLease(holder string, b store.Business, st *webhookState, mu *sync.Mutex) bool {
	now := time.Now()
	ok, err := s.st.TakeLease(s.ctx, "webhooks:"+b.UserID, holder, now, now.Add(s.cfg.WebhookLease))
	if err != nil || !ok {
		if err == nil {
			s.stats.setHookFailure(b.UserID, nil) // another node's to tell now
		}
		return false
	}
	mu.Lock()
	if now.After(st.leaseUntil) {
		st.attempts, st.next = 0, time.Time{}
	}
	st.leaseUntil = now.Add(s.cfg.WebhookLease)
	mu.Unlock()
	return true
}

// deliverQueue posts up to a page of b's queue, while it holds the lease;
// more says it posted a whole page and stopped for no other reason.
// A turn that ends (turnEnds) stops it before its next POST, with more.
func (s *Server) deliverQueue(client *http.Client, holder string, b store.Business, st *webhookState, mu *sync.Mutex, turnEnds time.Time) (more bool) {
	ctx := s.ctx
	if !s.holdLease(holder, b, st, mu) {
		return // another node posts this queue
	}
	mu.Lock()
	if st.url != b.WebhookURL {
		// A new webhook: the old one's failures say nothing of it.
		st.url, st.attempts, st.next = b.WebhookURL, 0, time.Time{}
	}
	wait := time.Now().Before(st.next)
	mu.Unlock()
	if wait {
		return // backing off; the lease renewed keeps it this node's
	}
	secret, err := s.openSecret(appSecretName(b.UserID), b.AppSecret)
	if err != nil {
		s.webhookFailed(b, st, mu, fmt.Errorf("the app secret cannot be opened: %w", err))
		return
	}
	phone := ""
	if u, err := s.st.User(ctx, b.UserID); err == nil {
		phone = u.Phone
	}
	md := cloudapi.Metadata{DisplayPhoneNumber: strings.TrimPrefix(phone, "+"), PhoneNumberID: b.PhoneNumberID}
	events, _, err := s.st.Inbox(ctx, b.DeviceID, 0, webhookPage)
	if err != nil {
		return
	}
	actor := chat.Actor{UserID: b.UserID, DeviceID: b.DeviceID}
	for i, ev := range events {
		if s.draining.Load() {
			return // stopping: the next holder goes on from here
		}
		// Renewed once a quarter of the lease went by, not before every
		// POST (a store write per event): a POST never outlives the
		// lease (below), so while this node posts, no other can take it.
		if i > 0 && time.Now().After(turnEnds) {
			return true // the other businesses' turn
		}
		// Also when what is left would cut a POST short (a short lease).
		mu.Lock()
		left := time.Until(st.leaseUntil)
		renew := left < s.cfg.WebhookLease*3/4 || left-time.Second < webhookTimeout
		mu.Unlock()
		if i > 0 && renew && !s.holdLease(holder, b, st, mu) {
			return // lost: the queue is another node's now
		}
		payload, customer, err := s.webhookPayload(ctx, b, md, ev)
		if err != nil {
			s.webhookFailed(b, st, mu, fmt.Errorf("building the payload: %w", err))
			return
		}
		if payload != nil {
			if customer != "" {
				// The customer wrote: the 24-hour window opens, whatever
				// the webhook does next.
				if err := s.st.RaiseWindow(ctx, b.UserID, customer, ev.Message.TS); err != nil {
					s.log.Warn("webhooks: raising the window failed", "business", b.UserID, "err", err)
				}
			}
			// Not cut short by a stop: an event posted is acked before the
			// node lets go (Shutdown waits), so the next holder does not
			// post it again.
			// Within the lease: a POST that outlived it could run beside
			// the next holder's of the same event.
			mu.Lock()
			timeout := min(webhookTimeout, time.Until(st.leaseUntil)-time.Second)
			mu.Unlock()
			if timeout <= 0 {
				return false // the next round renews the lease first
			}
			err := s.postWebhook(context.WithoutCancel(ctx), client, b.WebhookURL, secret, payload, timeout)
			s.stats.hooks.Record(err, time.Now())
			if err != nil {
				if age := time.Since(time.UnixMilli(eventTS(ev))); age < s.cfg.WebhookGiveUp {
					s.metrics.webhooks.WithLabelValues("failed").Inc()
					s.webhookFailed(b, st, mu, err)
					return
				}
				s.metrics.webhooks.WithLabelValues("dropped").Inc()
				s.log.Error("webhooks: an event failed past the give-up age; dropped", "business", b.UserID, "cursor", ev.Cursor, "err", err)
			} else {
				s.metrics.webhooks.WithLabelValues("ok").Inc()
			}
		}
		if _, err := s.chat.Ack(context.WithoutCancel(ctx), actor, ev.Cursor); err != nil {
			s.log.Warn("webhooks: ack failed; the event will go again", "business", b.UserID, "err", err)
			return
		}
		mu.Lock()
		st.attempts, st.next = 0, time.Time{}
		mu.Unlock()
		// Not only after failures this worker counted: a lease taken anew
		// forgets them (holdLease), and the failure shown must go too.
		s.stats.setHookFailure(b.UserID, nil)
	}
	return len(events) == webhookPage
}

// webhookFailed backs b's queue off.
func (s *Server) webhookFailed(b store.Business, st *webhookState, mu *sync.Mutex, err error) {
	mu.Lock()
	st.attempts++
	wait := min(s.cfg.WebhookRetry<<min(st.attempts-1, 20), webhookMaxDelay)
	st.next = time.Now().Add(wait)
	attempts := st.attempts
	mu.Unlock()
	now := time.Now()
	s.stats.setHookFailure(b.UserID, &hookFailure{Attempts: attempts, Error: health.RedactURLs(err.Error()), Since: now.UnixMilli(), Next: now.Add(wait).UnixMilli()})
	s.log.Info("webhooks: delivery failed; will try again", "business", b.UserID, "attempt", attempts, "in", wait, "err", err)
}

// eventTS is when an event happened, for its give-up age.
func eventTS(ev store.Event) int64 {
	switch {
	case ev.Message != nil:
		return ev.Message.TS
	case ev.Receipt != nil:
		return ev.Receipt.TS
	}
	return time.Now().UnixMilli()
}

// postWebhook POSTs one payload, signed, as Meta does: ASCII-only JSON
// (with \/), X-Hub-Signature-256 over those exact bytes.
func (s *Server) postWebhook(ctx context.Context, client *http.Client, url string, secret []byte, payload any, timeout time.Duration) error {
	body, err := cloudapi.MarshalMeta(payload)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(cloudapi.SignatureHeader, cloudapi.Sign(secret, body))
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", res.Status)
	}
	return nil
}

// webhookPayload is the Cloud API payload of one queue event, or nil for
// an event the Cloud API has no word for (a group change, the business's
// own message); customer is who wrote, for an inbound message.
func (s *Server) webhookPayload(ctx context.Context, b store.Business, md cloudapi.Metadata, ev store.Event) (payload any, customer string, err error) {
	if ev.Kind == store.EventMessage && ev.Message != nil {
		if _, _, direct := store.DirectChatMembers(ev.Message.ChatID); !direct {
			// A group the business was added to: the Cloud API has no
			// groups, and a member's word there opens no window.
			return nil, "", nil
		}
	}
	switch {
	case ev.Kind == store.EventMessage && ev.Message != nil && ev.Message.From != b.UserID:
		m := ev.Message
		u, err := s.st.User(ctx, m.From)
		if err != nil {
			return nil, "", err
		}
		var body wire.Body
		if err := json.Unmarshal(m.Body, &body); err != nil {
			return nil, "", nil // not a body this layer reads: skip
		}
		id, at := business.MessageID(m.ChatID, m.ID), time.UnixMilli(m.TS)
		var in cloudapi.InboundMessage
		switch {
		case body.Reaction != nil:
			in = cloudapi.NewInboundReaction(u.Phone, id, at, business.MessageID(m.ChatID, body.Reaction.MsgID), body.Reaction.Emoji)
		case m.Kind != "" && body.Reaction == nil, body.Edit != nil || body.Delete != nil || body.Group != nil || body.Disappearing != nil:
			return nil, "", nil
		}
		var quoted *store.Message
		if m.ReplyTo != "" {
			if q, err := s.st.Message(ctx, m.ChatID, m.ReplyTo); err == nil {
				quoted = &q
			} else if !errors.Is(err, store.ErrNotFound) {
				return nil, "", err
			}
		}
		if in.Type == "" {
			in = s.inboundOf(ctx, b, u.Phone, id, at, &body, quoted)
		}
		if m.ReplyTo != "" {
			// context.from is the quoted message's author.
			from := md.DisplayPhoneNumber
			if quoted != nil && quoted.From == m.From {
				from = u.Phone
			}
			in = in.WithContext(from, business.MessageID(m.ChatID, m.ReplyTo))
		}
		contact := cloudapi.WebhookContact{Profile: cloudapi.Profile{Name: u.Name}, WaID: u.Phone}
		writer := m.From
		if !customerWrote(m) {
			writer = "" // a reaction taken back opens no window
		}
		return cloudapi.NewMessagesPayload(b.WABAID, md, contact, in), writer, nil
	case ev.Kind == store.EventMessage && ev.Message != nil:
		// The business's own send, echoed into its queue: "sent".
		m := ev.Message
		var to string
		for _, id := range directMembers(m.ChatID) {
			if id != b.UserID {
				to = id
			}
		}
		u, err := s.st.User(ctx, to)
		if errors.Is(err, store.ErrNotFound) {
			return nil, "", nil // not a chat with a customer: nothing to say
		}
		if err != nil {
			return nil, "", err
		}
		st := cloudapi.NewStatus(business.MessageID(m.ChatID, m.ID), "sent", time.UnixMilli(m.TS), u.Phone)
		if st.BizOpaqueCallbackData, err = s.callbackData(ctx, b, m.ID); err != nil {
			return nil, "", err
		}
		return cloudapi.NewStatusPayload(b.WABAID, md, st), "", nil
	case ev.Kind == store.EventReceipt && ev.Receipt != nil:
		r := ev.Receipt
		if r.Status != wire.StatusDelivered && r.Status != wire.StatusRead {
			return nil, "", nil
		}
		reader, err := s.st.User(ctx, r.By)
		if err != nil {
			return nil, "", err
		}
		statuses := make([]cloudapi.Status, 0, len(r.MsgIDs))
		for _, id := range r.MsgIDs {
			st := cloudapi.NewStatus(business.MessageID(r.ChatID, id), r.Status, time.UnixMilli(r.TS), reader.Phone)
			if st.BizOpaqueCallbackData, err = s.callbackData(ctx, b, id); err != nil {
				return nil, "", err
			}
			statuses = append(statuses, st)
		}
		return cloudapi.NewStatusPayload(b.WABAID, md, statuses...), "", nil
	}
	return nil, "", nil
}

// callbackData is the biz_opaque_callback_data the business sent message
// msgID with; "" if none.
func (s *Server) callbackData(ctx context.Context, b store.Business, msgID string) (string, error) {
	d, err := s.st.CallbackData(ctx, b.UserID, msgID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	return d, err
}

// callbackKeep is how long a message's callback data waits for its
// statuses: a phone offline for weeks still sends its delivered and read.
const callbackKeep = 30 * 24 * time.Hour

// pruneCallbackData deletes callback data older than callbackKeep, in
// batches until none is left or 5 minutes went by; every node runs it
// (deletes are idempotent), at its start and every 10 minutes.
func (s *Server) pruneCallbackData() {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Minute)
	defer cancel()
	for {
		n, err := s.st.PruneCallbackData(ctx, time.Now().Add(-callbackKeep), 1000)
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("webhooks: pruning callback data failed", "err", err)
			}
			return
		}
		if n < 1000 {
			return
		}
	}
}

// inboundOf is a customer's message (not a reaction) as the Cloud API
// tells it: a tap on a card the business sent, a file, or text; what it
// cannot say is "unsupported".
func (s *Server) inboundOf(ctx context.Context, b store.Business, phone, id string, at time.Time, body *wire.Body, quoted *store.Message) cloudapi.InboundMessage {
	if body.Choice != "" && quoted != nil && quoted.From == b.UserID {
		var qb wire.Body
		if json.Unmarshal(quoted.Body, &qb) == nil {
			if in, ok := inboundChoice(phone, id, at, &qb, body.Choice); ok {
				return in
			}
		}
	}
	if body.MediaID != "" {
		if kind, media, ok := s.inboundMedia(ctx, b, body); ok {
			if in, err := cloudapi.NewInboundMedia(phone, id, at, kind, media); err == nil {
				return in
			}
		}
	} else if body.Text != "" {
		return cloudapi.NewInboundText(phone, id, at, body.Text)
	}
	return cloudapi.InboundMessage{From: strings.TrimPrefix(phone, "+"), ID: id, Timestamp: cloudapi.Timestamp(at), Type: "unsupported",
		Errors: []cloudapi.WebhookError{cloudapi.WebhookErrorFrom(cloudapi.ErrUnsupportedMessageType())}}
}

// openSecret opens a secret sealSecret stored.
func (s *Server) openSecret(name string, stored []byte) ([]byte, error) {
	if !seal.IsSealed(stored) {
		return stored, nil
	}
	if s.master == nil {
		return nil, errors.New("sealed, and this node has no master key")
	}
	return seal.Open(s.master, name, stored)
}

// stopWebhooks lets the queues' posts in flight finish and be acked (within
// ctx), after draining stopped new ones.
func (s *Server) stopWebhooks(ctx context.Context) {
	s.webhooks.mu.Lock()
	s.webhooks.stopping = true
	s.webhooks.mu.Unlock()
	done := make(chan struct{})
	go func() { s.webhooks.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("shutdown: webhook posts still running at the deadline; their events may go again from another node")
	}
}

// webhookWorkers counts the webhook posts running, so that Shutdown can
// wait for them; once it waits, none starts.
type webhookWorkers struct {
	mu       sync.Mutex
	stopping bool
	wg       sync.WaitGroup
}

// start counts one more worker, unless the node is stopping.
func (w *webhookWorkers) start() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopping {
		return false
	}
	w.wg.Add(1)
	return true
}

// addBizDevice adds a business just made here to the API devices known,
// before the next listing.
func (s *Server) addBizDevice(device string) {
	s.mergeBizDevices(map[string]bool{device: true})
}

// mergeBizDevices adds devices to the API devices known.
func (s *Server) mergeBizDevices(devices map[string]bool) {
	for {
		old := s.bizDevices.Load()
		next := maps.Clone(devices)
		if old != nil {
			for d := range *old {
				next[d] = true
			}
		}
		if s.bizDevices.CompareAndSwap(old, &next) {
			return
		}
	}
}

// isBizDevice reports whether device is a business's API device, as the
// webhook loop last listed them: it holds no socket and has no push
// token, and its inbox is read by the webhook loop, so nothing wakes it.
func (s *Server) isBizDevice(device string) bool {
	m := s.bizDevices.Load()
	return m != nil && (*m)[device]
}
