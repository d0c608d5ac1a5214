package mongo

import (
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/tern-im/tern/store"
)

// Inbox events as per-device inboxes stored them, before feeds (feed.go):
// the migration at Open reads them (migrate.go), and a feed entry moved
// from one may hold its message whole (eventMsg).

// eventDoc is an inbox event. N is a random tag of one insert, so that a
// writer can take back exactly its own event.
type eventDoc struct {
	ID      string     `bson:"_id"`
	N       int64      `bson:"n"`
	Kind    string     `bson:"k"`
	Message *eventMsg  `bson:"m,omitempty"`
	Receipt *eventRcpt `bson:"r,omitempty"`
}

// Event kinds in documents.
const (
	kindMessage = "m"
	kindReceipt = "r"
	kindGroup   = "g" // a group change: m is its log entry; no receipts
)

type eventMsg struct {
	ID         string `bson:"id"`
	ChatID     string `bson:"chat"`
	Seq        int64  `bson:"seq"`
	From       string `bson:"from"`
	FromDevice string `bson:"dev"`
	TS         int64  `bson:"ts"`
	Body       []byte `bson:"body,omitempty"`
	ReplyTo    string `bson:"reply,omitempty"`
	Kind       string `bson:"kind,omitempty"`
	Hidden     string `bson:"hidden,omitempty"` // store.Message.HiddenFrom
	// What message actions and expiry left on the entry (store.Message's
	// fields of the same names): absent on most entries, so that they
	// cost a message nothing.
	EditedTS  int64         `bson:"ed,omitempty"`
	Deleted   bool          `bson:"del,omitempty"`
	Reactions []reactionDoc `bson:"rx,omitempty"`
	EditSeqs  []int64       `bson:"es,omitempty"`
	ExpiresTS int64         `bson:"exp,omitempty"`
	// Ref marks the copy in an inbox event, which leaves out the body,
	// reply_to and the state above: the log entry at (chat, seq) has
	// them, stored once however many devices get it. The entry is never
	// undone (a send that stops halfway is completed), but actions and
	// expiry change its body and state in the log, and a reference reads
	// them as they are when the device does.
	Ref bool `bson:"ref,omitempty"`
}

// reactionDoc is a store.Reaction in documents.
type reactionDoc struct {
	UserID string `bson:"u"`
	Emoji  string `bson:"e"`
}

func reactionDocs(rs []store.Reaction) []reactionDoc {
	if len(rs) == 0 {
		return nil
	}
	out := make([]reactionDoc, len(rs))
	for i, r := range rs {
		out[i] = reactionDoc{UserID: r.UserID, Emoji: r.Emoji}
	}
	return out
}

func reactionsOf(ds []reactionDoc) []store.Reaction {
	if len(ds) == 0 {
		return nil
	}
	out := make([]store.Reaction, len(ds))
	for i, d := range ds {
		out[i] = store.Reaction{UserID: d.UserID, Emoji: d.Emoji}
	}
	return out
}

type eventRcpt struct {
	ChatID string   `bson:"chat"`
	MsgIDs []string `bson:"ids"`
	Status string   `bson:"st"`
	By     string   `bson:"by"`
	TS     int64    `bson:"ts"`
}

func msgOf(m *store.Message) *eventMsg {
	return &eventMsg{ID: m.ID, ChatID: m.ChatID, Seq: m.Seq, From: m.From, FromDevice: m.FromDevice,
		TS: m.TS, Body: m.Body, ReplyTo: m.ReplyTo, Kind: m.Kind, Hidden: m.HiddenFrom,
		EditedTS: m.EditedTS, Deleted: m.Deleted, Reactions: reactionDocs(m.Reactions), EditSeqs: m.EditSeqs,
		ExpiresTS: m.ExpiresTS}
}

// refOf is m as an inbox event holds it: what acks need (id, chat, seq,
// author, kind), not the body and state, which Inbox reads from the log.
func refOf(m *store.Message) *eventMsg {
	e := msgOf(m)
	e.Body, e.ReplyTo, e.Ref = nil, "", true
	e.EditedTS, e.Deleted, e.Reactions, e.EditSeqs, e.ExpiresTS = 0, false, nil, nil, 0
	return e
}

func (e *eventMsg) message() *store.Message {
	return &store.Message{ID: e.ID, ChatID: e.ChatID, Seq: e.Seq, From: e.From, FromDevice: e.FromDevice,
		TS: e.TS, Body: e.Body, ReplyTo: e.ReplyTo, Kind: e.Kind, HiddenFrom: e.Hidden,
		EditedTS: e.EditedTS, Deleted: e.Deleted, Reactions: reactionsOf(e.Reactions), EditSeqs: e.EditSeqs,
		ExpiresTS: e.ExpiresTS}
}

// idRange is the filter of every key id/N.
func idRange(id string) bson.D {
	return bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: rangeStart(id)}, {Key: "$lt", Value: rangeEnd(id)}}}}
}
