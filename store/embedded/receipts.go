package embedded

import (
	"slices"
	"strings"

	"github.com/tern-im/tern/store"
)

// Coalesced receipts. A message to a group of a thousand members brings
// its author a delivered receipt from each of them, most within a moment:
// as many receipt events (feed entries, frames to each of the author's
// devices) as the message had deliveries. In a group larger than
// store.CoalesceReceiptsAbove, the receipts one writer round makes for the
// same author, chat, status and messages are one entry: the first reader
// in By, the others in Others. The entry's cursor is taken when the first
// of them comes; what it holds is written once, when the round ends
// (finish), so that merging a reader costs no rewrite.

// coalescing is one coalesced receipt of the round.
type coalescing struct {
	author string
	cursor int64
	r      *store.Receipt
}

// largeGroup reports whether chatID is a group whose receipts coalesce.
func (w *wtx) largeGroup(chatID string) bool {
	if !strings.HasPrefix(chatID, store.PrefixGroup) {
		return false
	}
	g, err := w.group(chatID)
	return err == nil && g != nil && len(g.Members) > store.CoalesceReceiptsAbove
}

// coalesce adds by's receipt for rg to the round's receipt for the same
// author, chat, status and messages, or starts that receipt and returns
// its deliveries (to devs, the author's devices). The deliveries share the
// *Receipt, which the rest of the round may still extend: callers render
// it after the round commits, when it is complete.
func (w *wtx) coalesce(rg *receiptGroup, status, by string, ts int64, devs []string) []store.Delivery {
	k := rg.author + "\x00" + rg.chatID + "\x00" + status + "\x00" + strings.Join(rg.msgIDs, ",")
	if c := w.coalesced[k]; c != nil {
		if c.r.By != by && !slices.Contains(c.r.Others, by) {
			c.r.Others = append(c.r.Others, by)
		}
		return nil
	}
	r := &store.Receipt{ChatID: rg.chatID, MsgIDs: rg.msgIDs, Status: status, By: by, TS: ts}
	cur := w.reserveFeed(rg.author)
	if w.coalesced == nil {
		w.coalesced = make(map[string]*coalescing)
	}
	w.coalesced[k] = &coalescing{author: rg.author, cursor: cur, r: r}
	out := make([]store.Delivery, 0, len(devs))
	for _, d := range devs {
		out = append(out, store.Delivery{
			DeviceID: d,
			Event:    store.Event{Cursor: cur, Kind: store.EventReceipt, Receipt: r},
		})
	}
	return out
}

// finish writes the round's coalesced receipts.
func (w *wtx) finish() {
	for _, c := range w.coalesced {
		w.put(seqKey(tFeed, c.author, c.cursor), encodeReceiptEvent(c.r))
	}
	w.coalesced = nil
}
