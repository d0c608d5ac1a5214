package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tern-im/tern/business"
	"github.com/tern-im/tern/business/cloudapi"
	"github.com/tern-im/tern/chat"
	"github.com/tern-im/tern/internal/safehttp"
	"github.com/tern-im/tern/internal/seal"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// Webhook delivery (issue 13; docs/architecture.md, "Business API"). A
// business's queue is its API device's inbox: customers' messages and the
// receipts of its own. One node at a time holds a business's lease and
// posts the queue in order, one event per POST, acking each after a 2xx:
// the ack is also what gives the customer ✓✓. A failure stops the queue
// (order is the contract) and backs off, doubling from WebhookRetry up to
// an hour; an event that failed for WebhookGiveUp is dropped and logged.

const (
	webhookLease     = 30 * time.Second
	webhookTimeout   = 10 * time.Second
	webhookPage      = 50
	webhookMaxDelay  = time.Hour
	webhookGiveUpDef = 7 * 24 * time.Hour
)

// webhookState is what the delivery loop remembers of one business's
// failures; the loop's goroutine alone touches it.
type webhookState struct {
	attempts     int
	next         time.Time // no try before
	failingSince time.Time
}

// webhookLoop delivers the queues of the businesses this node holds.
func (s *Server) webhookLoop() {
	client := safehttp.NewClient(safehttp.Options{Timeout: webhookTimeout, AllowPrivate: s.cfg.WebhookAllowPrivate})
	states := map[string]*webhookState{}
	holder := s.cfg.NodeID + "/" + s.stats.boot
	s.every(s.cfg.WebhookPoll, func(now time.Time) {
		after := ""
		for {
			bs, err := s.st.ListBusinesses(s.ctx, after, 200)
			if err != nil {
				if s.ctx.Err() == nil {
					s.log.Warn("webhooks: listing businesses failed", "err", err)
				}
				return
			}
			for _, b := range bs {
				if b.WebhookURL == "" || b.WebhookVerifiedAt.IsZero() {
					continue
				}
				st := states[b.UserID]
				if st == nil {
					st = &webhookState{}
					states[b.UserID] = st
				}
				if now.Before(st.next) {
					continue
				}
				ok, err := s.st.TakeLease(s.ctx, "webhooks:"+b.UserID, holder, now, now.Add(webhookLease))
				if err != nil || !ok {
					continue // another node delivers this queue
				}
				s.deliverQueue(client, b, st)
			}
			if len(bs) < 200 {
				return
			}
			after = bs[len(bs)-1].UserID
		}
	})
}

// deliverQueue posts b's queue until it is empty or a POST fails.
func (s *Server) deliverQueue(client *http.Client, b store.Business, st *webhookState) {
	ctx := s.ctx
	actor := chat.Actor{UserID: b.UserID, DeviceID: b.DeviceID}
	secret, err := s.openSecret(appSecretName(b.UserID), b.AppSecret)
	if err != nil {
		s.log.Error("webhooks: the app secret cannot be opened", "business", b.UserID, "err", err)
		return
	}
	phone := ""
	if u, err := s.st.User(ctx, b.UserID); err == nil {
		phone = u.Phone
	}
	md := cloudapi.Metadata{DisplayPhoneNumber: strings.TrimPrefix(phone, "+"), PhoneNumberID: b.PhoneNumberID}
	for {
		events, _, err := s.st.Inbox(ctx, b.DeviceID, 0, webhookPage)
		if err != nil || len(events) == 0 {
			return
		}
		for _, ev := range events {
			payload, customer, err := s.webhookPayload(ctx, b, md, ev)
			if err != nil {
				s.log.Warn("webhooks: building a payload failed; will try again", "business", b.UserID, "err", err)
				return
			}
			if payload != nil {
				if customer != "" && ev.Message != nil {
					// The customer wrote: the 24-hour window opens,
					// whatever the webhook does next.
					if err := s.st.RaiseWindow(ctx, b.UserID, customer, ev.Message.TS); err != nil {
						s.log.Warn("webhooks: raising the window failed", "business", b.UserID, "err", err)
					}
				}
				if err := s.postWebhook(ctx, client, b.WebhookURL, secret, payload); err != nil {
					now := time.Now()
					if st.failingSince.IsZero() {
						st.failingSince = now
					}
					if now.Sub(st.failingSince) < s.cfg.WebhookGiveUp {
						st.attempts++
						st.next = now.Add(min(s.cfg.WebhookRetry<<min(st.attempts-1, 20), webhookMaxDelay))
						s.log.Info("webhooks: delivery failed; will try again", "business", b.UserID, "attempt", st.attempts, "in", time.Until(st.next), "err", err)
						return
					}
					s.log.Error("webhooks: an event failed for too long; dropped", "business", b.UserID, "cursor", ev.Cursor, "err", err)
				}
			}
			if _, err := s.chat.Ack(ctx, actor, ev.Cursor); err != nil {
				s.log.Warn("webhooks: ack failed; the event will go again", "business", b.UserID, "err", err)
				return
			}
			*st = webhookState{}
		}
	}
}

// postWebhook POSTs one payload, signed, as Meta does: ASCII-only JSON
// (with \/), X-Hub-Signature-256 over those exact bytes.
func (s *Server) postWebhook(ctx context.Context, client *http.Client, url string, secret []byte, payload any) error {
	body, err := cloudapi.MarshalMeta(payload)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, webhookTimeout)
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
		case body.Edit != nil || body.Delete != nil || body.Group != nil || body.Disappearing != nil:
			return nil, "", nil
		case body.MediaID == "" && body.Text != "":
			in = cloudapi.NewInboundText(u.Phone, id, at, body.Text)
		default:
			// Media reach businesses with the media endpoints (to come):
			// until then the Cloud API's word for what it cannot show.
			in = cloudapi.InboundMessage{From: strings.TrimPrefix(u.Phone, "+"), ID: id, Timestamp: cloudapi.Timestamp(at), Type: "unsupported",
				Errors: []cloudapi.WebhookError{cloudapi.WebhookErrorFrom(cloudapi.ErrUnsupportedMessageType())}}
		}
		if m.ReplyTo != "" {
			in = in.WithContext(md.DisplayPhoneNumber, business.MessageID(m.ChatID, m.ReplyTo))
		}
		contact := cloudapi.WebhookContact{Profile: cloudapi.Profile{Name: u.Name}, WaID: u.Phone}
		return cloudapi.NewMessagesPayload(b.WABAID, md, contact, in), m.From, nil
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
		if err != nil {
			return nil, "", nil // not a chat with a customer: nothing to say
		}
		st := cloudapi.NewStatus(business.MessageID(m.ChatID, m.ID), "sent", time.UnixMilli(m.TS), u.Phone)
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
			statuses = append(statuses, cloudapi.NewStatus(business.MessageID(r.ChatID, id), r.Status, time.UnixMilli(r.TS), reader.Phone))
		}
		return cloudapi.NewStatusPayload(b.WABAID, md, statuses...), "", nil
	}
	return nil, "", nil
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
