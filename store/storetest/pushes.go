package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
)

// The push queue is driven by the times its callers pass, so these tests
// move a fixed clock (at) instead of sleeping: a lease runs out because a
// claim says it is later, never because time passed.

// newPush returns a push to a new device, for a message unless kind says
// otherwise, due at ms.
func newPush(kind string, ms int64) store.PushJob {
	return pushTo(store.NewID(store.PrefixDevice), kind, ms)
}

func pushTo(device, kind string, ms int64) store.PushJob {
	return store.PushJob{
		DeviceID: device,
		UserID:   store.NewID(store.PrefixUser),
		Kind:     kind,
		ChatID:   store.NewID(store.PrefixGroup),
		MsgID:    store.NewID(store.PrefixMessage),
		From:     store.NewID(store.PrefixUser),
		Text:     fmt.Sprintf("ünïcode and more, due at %d ms", ms),
		Due:      at(ms),
	}
}

// diffPush says how got differs from want, Lease aside; "" if it does not.
func diffPush(got, want store.PushJob) string {
	switch {
	case got.DeviceID != want.DeviceID:
		return fmt.Sprintf("DeviceID %q, want %q", got.DeviceID, want.DeviceID)
	case got.UserID != want.UserID || got.Kind != want.Kind:
		return fmt.Sprintf("UserID, Kind %q, %q, want %q, %q", got.UserID, got.Kind, want.UserID, want.Kind)
	case got.ChatID != want.ChatID || got.MsgID != want.MsgID:
		return fmt.Sprintf("ChatID, MsgID %q, %q, want %q, %q", got.ChatID, got.MsgID, want.ChatID, want.MsgID)
	case got.From != want.From || got.Text != want.Text:
		return fmt.Sprintf("From, Text %q, %q, want %q, %q", got.From, got.Text, want.From, want.Text)
	case !got.Due.Equal(want.Due):
		return fmt.Sprintf("Due %v, want %v", got.Due, want.Due)
	case got.Attempts != want.Attempts:
		return fmt.Sprintf("Attempts %d, want %d", got.Attempts, want.Attempts)
	}
	return ""
}

func pushIDs(js []store.PushJob) []string {
	ids := make([]string, 0, len(js))
	for _, j := range js {
		ids = append(ids, j.DeviceID)
	}
	return ids
}

// pushQueue wraps a store with the calls the tests make, failing on
// unexpected errors.
type pushQueue struct {
	t testing.TB
	s store.Store
}

func (q pushQueue) queue(j store.PushJob, cooldown time.Duration) {
	q.t.Helper()
	if err := q.s.QueuePush(q.t.Context(), j, cooldown); err != nil {
		q.t.Fatalf("QueuePush(%s): %v", j.DeviceID, err)
	}
}

// claim claims at now with a lease until until and checks that every
// push it returns has a lease, a new one.
func (q pushQueue) claim(now, until time.Time, limit int) []store.PushJob {
	q.t.Helper()
	js, err := q.s.ClaimPushes(q.t.Context(), now, until, limit)
	if err != nil {
		q.t.Fatalf("ClaimPushes(%v, %v, %d): %v", now, until, limit, err)
	}
	for _, j := range js {
		if j.Lease == "" {
			q.t.Fatalf("ClaimPushes returned %s without a lease", j.DeviceID)
		}
	}
	return js
}

// claimOne claims at now and checks that it gets exactly want.
func (q pushQueue) claimOne(now, until time.Time, want store.PushJob) store.PushJob {
	q.t.Helper()
	js := q.claim(now, until, 100)
	if len(js) != 1 {
		q.t.Fatalf("claim at %v: got %v, want only %s", now, pushIDs(js), want.DeviceID)
	}
	if d := diffPush(js[0], want); d != "" {
		q.t.Fatalf("claim at %v: %s", now, d)
	}
	return js[0]
}

// claimNone checks that a claim at now gets nothing.
func (q pushQueue) claimNone(now time.Time) {
	q.t.Helper()
	if js := q.claim(now, now.Add(time.Minute), 100); len(js) != 0 {
		q.t.Fatalf("claim at %v: got %v, want none", now, pushIDs(js))
	}
}

func (q pushQueue) pending(want int) {
	q.t.Helper()
	n, err := q.s.PendingPushes(q.t.Context())
	if err != nil {
		q.t.Fatalf("PendingPushes: %v", err)
	}
	if n != want {
		q.t.Fatalf("PendingPushes = %d, want %d", n, want)
	}
}

func (q pushQueue) done(j store.PushJob, sentAt time.Time) {
	q.t.Helper()
	if err := q.s.DonePush(q.t.Context(), j.DeviceID, j.Lease, sentAt); err != nil {
		q.t.Fatalf("DonePush(%s): %v", j.DeviceID, err)
	}
}

func (q pushQueue) cancel(device string) {
	q.t.Helper()
	if err := q.s.CancelPush(q.t.Context(), device); err != nil {
		q.t.Fatalf("CancelPush(%s): %v", device, err)
	}
}

func testPushes(t *testing.T, newStore func(t *testing.T) store.Store) {
	const cooldown = 10 * time.Second
	lease := func(now time.Time) time.Time { return now.Add(30 * time.Second) }

	t.Run("QueueAndClaim", func(t *testing.T) {
		q := pushQueue{t, newStore(t)}
		q.pending(0)
		q.claimNone(at(0))
		j := newPush(store.EventMessage, 1000)
		// Queued with a lease and attempts, which are the store's to set.
		in := j
		in.Lease, in.Attempts = "forged", 7
		q.queue(in, cooldown)
		q.pending(1)
		q.claimNone(at(999)) // not due yet
		got := q.claimOne(at(1000), lease(at(1000)), j)
		if got.Lease == in.Lease {
			t.Fatalf("claimed under the lease the caller queued it with, %q", got.Lease)
		}
		q.pending(1) // claimed is not done
		q.claimNone(at(1000))

		// Every field but the due time, empty, reads back empty.
		bare := store.PushJob{DeviceID: store.NewID(store.PrefixDevice), Kind: store.EventReceipt, Due: at(2000)}
		q.queue(bare, cooldown)
		q.claimOne(at(2000), lease(at(2000)), bare)
		q.pending(2)
		q.done(got, at(3000))
		q.pending(1)
	})

	t.Run("OnePerDevice", func(t *testing.T) {
		q := pushQueue{t, newStore(t)}
		now := at(5000)

		// A second push of the same kind, even due earlier, changes
		// nothing: the burst's first names the push.
		first := newPush(store.EventMessage, 2000)
		second := pushTo(first.DeviceID, store.EventMessage, 1000)
		q.queue(first, cooldown)
		q.queue(second, cooldown)
		receipt := newPush(store.EventReceipt, 2000)
		q.queue(receipt, cooldown)
		q.queue(pushTo(receipt.DeviceID, store.EventReceipt, 1000), cooldown)
		// Nor does another kind after a message.
		q.queue(pushTo(first.DeviceID, store.EventReceipt, 500), cooldown)
		q.pending(2)

		// A message replaces another kind, keeping the earlier due time,
		// whichever it is.
		early := newPush(store.EventReceipt, 1500)
		msgLate := pushTo(early.DeviceID, store.EventMessage, 3000)
		late := newPush("", 3500)
		msgEarly := pushTo(late.DeviceID, store.EventMessage, 2500)
		q.queue(early, cooldown)
		q.queue(late, cooldown)
		q.queue(msgLate, cooldown)
		q.queue(msgEarly, cooldown)
		q.pending(4)
		wantLate, wantEarly := msgLate, msgEarly
		wantLate.Due = early.Due

		js := q.claim(now, lease(now), 10)
		want := []store.PushJob{wantLate, first, receipt, wantEarly} // 1500, 2000, 2000, 2500
		if !slices.Equal(sorted(pushIDs(js)), sorted(pushIDs(want))) {
			t.Fatalf("claimed %v, want %v", pushIDs(js), pushIDs(want))
		}
		for _, w := range want {
			i := slices.IndexFunc(js, func(j store.PushJob) bool { return j.DeviceID == w.DeviceID })
			if d := diffPush(js[i], w); d != "" {
				t.Fatalf("push of %s: %s", w.DeviceID, d)
			}
		}

		// A claimed push stays as it is, claimed: another push neither
		// frees it nor changes what its claimer sends.
		claimOf := func(device string) store.PushJob {
			return js[slices.IndexFunc(js, func(j store.PushJob) bool { return j.DeviceID == device })]
		}
		q.queue(pushTo(first.DeviceID, store.EventMessage, 100), cooldown)
		q.claimNone(now)
		q.pending(4)
		c := claimOf(first.DeviceID)
		must(t, q.s.RetryPush(t.Context(), c.DeviceID, c.Lease, at(4000)))
		kept := first
		kept.Due, kept.Attempts = at(4000), 1
		q.done(q.claimOne(now, lease(now), kept), now)
		q.pending(3)

		// A message's push replaces a claimed push of another kind: it is
		// a push of its own, unclaimed and never tried, and the claimer's
		// lease is no longer the push's.
		r := claimOf(receipt.DeviceID)
		must(t, q.s.RetryPush(t.Context(), r.DeviceID, r.Lease, at(4000)))
		retried := receipt
		retried.Due, retried.Attempts = at(4000), 1
		r = q.claimOne(now, lease(now), retried)
		msg := pushTo(receipt.DeviceID, store.EventMessage, 9000)
		q.queue(msg, cooldown)
		wantErr(t, q.s.DonePush(t.Context(), r.DeviceID, r.Lease, now), store.ErrConflict,
			"DonePush of a claimed push a message replaced")
		wantErr(t, q.s.RetryPush(t.Context(), r.DeviceID, r.Lease, now), store.ErrConflict,
			"RetryPush of a claimed push a message replaced")
		msg.Due = at(4000)
		q.claimOne(now, lease(now), msg)
		q.pending(3)
	})

	t.Run("Cooldown", func(t *testing.T) {
		q := pushQueue{t, newStore(t)}
		j := newPush(store.EventMessage, 1000)
		q.queue(j, cooldown)
		c := q.claimOne(at(1000), lease(at(1000)), j)
		sent := at(5000)
		q.done(c, sent)
		// The marker of the cooldown is not a push.
		q.pending(0)
		q.claimNone(at(1_000_000))

		// Within the cooldown: due when it ends, not before.
		again := pushTo(j.DeviceID, store.EventMessage, 6000)
		q.queue(again, cooldown)
		q.pending(1)
		q.claimNone(sent.Add(cooldown - time.Millisecond))
		want := again
		want.Due = sent.Add(cooldown)
		c = q.claimOne(sent.Add(cooldown), lease(sent.Add(cooldown)), want)

		// Due after the cooldown ends: as asked.
		sent = at(20_000)
		q.done(c, sent)
		after := pushTo(j.DeviceID, store.EventMessage, 40_000)
		q.queue(after, cooldown)
		q.claimNone(at(39_999))
		c = q.claimOne(at(40_000), lease(at(40_000)), after)

		// The cooldown is the caller's: a shorter one ends sooner, none
		// has none.
		sent = at(50_000)
		q.done(c, sent)
		short := pushTo(j.DeviceID, store.EventMessage, 50_001)
		q.queue(short, time.Second)
		want = short
		want.Due = at(51_000)
		q.claimNone(at(50_999))
		c = q.claimOne(at(51_000), lease(at(51_000)), want)
		sent = at(60_000)
		q.done(c, sent)
		none := pushTo(j.DeviceID, store.EventMessage, 60_001)
		q.queue(none, 0)
		c = q.claimOne(at(60_001), lease(at(60_001)), none)

		// A message replacing another kind within the cooldown keeps
		// the earlier of the two due times, each after the cooldown.
		sent = at(70_000)
		q.done(c, sent)
		rc := pushTo(j.DeviceID, store.EventReceipt, 70_001)
		q.queue(rc, cooldown)
		msg := pushTo(j.DeviceID, store.EventMessage, 70_002)
		q.queue(msg, cooldown)
		want = msg
		want.Due = sent.Add(cooldown)
		q.claimNone(sent.Add(cooldown - time.Millisecond))
		c = q.claimOne(sent.Add(cooldown), lease(sent.Add(cooldown)), want)

		// Other devices have no cooldown of this one's.
		other := newPush(store.EventMessage, 70_003)
		q.queue(other, cooldown)
		q.claimOne(at(70_003), lease(at(70_003)), other)

		// CancelPush forgets the cooldown: the device connected.
		q.done(c, at(90_000))
		q.cancel(j.DeviceID)
		fresh := pushTo(j.DeviceID, store.EventMessage, 90_001)
		q.queue(fresh, cooldown)
		q.claimOne(at(90_001), lease(at(90_001)), fresh)
		q.pending(2)
	})

	t.Run("Cancel", func(t *testing.T) {
		q := pushQueue{t, newStore(t)}
		ctx := t.Context()
		queued, claimed, kept := newPush(store.EventMessage, 1000), newPush(store.EventMessage, 500), newPush(store.EventMessage, 2000)
		q.queue(queued, cooldown)
		q.queue(claimed, cooldown)
		q.queue(kept, cooldown)
		c := q.claimOne(at(500), lease(at(500)), claimed)
		q.pending(3)

		q.cancel(queued.DeviceID)
		q.cancel(claimed.DeviceID)
		q.pending(1)
		// The claimer's lease went with the push.
		wantErr(t, q.s.DonePush(ctx, c.DeviceID, c.Lease, at(600)), store.ErrConflict, "DonePush of a canceled push")
		wantErr(t, q.s.RetryPush(ctx, c.DeviceID, c.Lease, at(600)), store.ErrConflict, "RetryPush of a canceled push")
		q.pending(1)
		// Nothing to claim but the other device's, even once every lease
		// has run out.
		q.claimOne(at(1_000_000), lease(at(1_000_000)), kept)

		// A device with no push, or canceled twice: not an error.
		q.cancel(store.NewID(store.PrefixDevice))
		q.cancel(queued.DeviceID)
		q.pending(1)

		// A push queued after a cancel is a new one, not the old one's.
		again := pushTo(claimed.DeviceID, store.EventMessage, 3000)
		q.queue(again, cooldown)
		q.claimNone(at(2999))
		q.claimOne(at(3000), lease(at(3000)), again)
		q.pending(2)
	})

	t.Run("Leases", func(t *testing.T) {
		q := pushQueue{t, newStore(t)}
		ctx := t.Context()
		var all []store.PushJob
		for i := range 6 {
			j := newPush(store.EventMessage, int64(100*i))
			q.queue(j, cooldown)
			all = append(all, j)
		}
		// Two claims at the same time share the pushes, none twice.
		now, until := at(1000), at(31_000)
		a := q.claim(now, until, 4)
		b := q.claim(now, until, 4)
		if len(a) != 4 || len(b) != 2 {
			t.Fatalf("claims got %d and %d pushes, want 4 and 2", len(a), len(b))
		}
		got := append(pushIDs(a), pushIDs(b)...)
		if !slices.Equal(sorted(got), sorted(pushIDs(all))) {
			t.Fatalf("claims got %v, want each of %v once", got, pushIDs(all))
		}
		q.claimNone(now)
		q.claimNone(until.Add(-time.Millisecond))

		// A lease that ran out is still its claimer's while nobody else
		// claimed the push.
		for _, j := range append(a[1:], b...) {
			q.done(j, until)
		}
		q.pending(1)

		// Once the lease has run out, the push is anyone's again, under
		// a new lease; the first claimer's is stale.
		stale := a[0]
		if d := diffPush(stale, all[0]); d != "" {
			t.Fatalf("first claim: %s", d)
		}
		next := q.claimOne(until, until.Add(30*time.Second), all[0])
		if next.Lease == stale.Lease {
			t.Fatalf("claimed again under the same lease %q", next.Lease)
		}

		// A stale lease changes nothing, nor does a lease of another
		// device or none.
		wantErr(t, q.s.DonePush(ctx, stale.DeviceID, stale.Lease, until), store.ErrConflict, "DonePush with a stale lease")
		wantErr(t, q.s.RetryPush(ctx, stale.DeviceID, stale.Lease, now), store.ErrConflict, "RetryPush with a stale lease")
		wantErr(t, q.s.DonePush(ctx, stale.DeviceID, "", until), store.ErrConflict, "DonePush with no lease")
		wantErr(t, q.s.RetryPush(ctx, stale.DeviceID, "", now), store.ErrConflict, "RetryPush with no lease")
		wantErr(t, q.s.DonePush(ctx, stale.DeviceID, a[1].Lease, until), store.ErrConflict, "DonePush with another device's lease")
		wantErr(t, q.s.DonePush(ctx, store.NewID(store.PrefixDevice), stale.Lease, until), store.ErrConflict, "DonePush of a device with no push")
		wantErr(t, q.s.RetryPush(ctx, store.NewID(store.PrefixDevice), stale.Lease, now), store.ErrConflict, "RetryPush of a device with no push")
		q.pending(1)
		// Still claimed by the second claimer, with no attempt counted and
		// its due time as it was; no cooldown started.
		q.claimNone(until.Add(29 * time.Second))
		q.claimNone(until)
		again := q.claimOne(until.Add(30*time.Second), until.Add(60*time.Second), all[0])

		// Done with the current lease ends it, once.
		q.done(again, until.Add(30*time.Second))
		wantErr(t, q.s.DonePush(ctx, again.DeviceID, again.Lease, until), store.ErrConflict, "DonePush twice")
		wantErr(t, q.s.RetryPush(ctx, again.DeviceID, again.Lease, until), store.ErrConflict, "RetryPush after DonePush")
		q.pending(0)
	})

	t.Run("Order", func(t *testing.T) {
		q := pushQueue{t, newStore(t)}
		var js []store.PushJob
		// Queued out of order, and device ids in no relation to it.
		for _, ms := range []int64{500, 100, 400, 200, 300, 600} {
			j := newPush(store.EventMessage, ms)
			q.queue(j, cooldown)
			js = append(js, j)
		}
		p500, p100, p400, p200, p300, p600 := js[0], js[1], js[2], js[3], js[4], js[5]
		check := func(what string, got []store.PushJob, want ...store.PushJob) {
			t.Helper()
			if !slices.Equal(pushIDs(got), pushIDs(want)) {
				t.Fatalf("%s: claimed %v, want %v", what, pushIDs(got), pushIDs(want))
			}
		}
		check("limit 0", q.claim(at(1000), at(2000), 0))
		check("limit 2", q.claim(at(1000), at(2000), 2), p100, p200)
		// A push whose lease ran out goes by its due time, before pushes
		// due later that were never claimed; those due after now wait.
		check("after the lease, limit 2", q.claim(at(2000), at(3000), 2), p100, p200)
		check("limit 1", q.claim(at(450), at(3000), 1), p300)
		check("up to 450", q.claim(at(450), at(3000), 10), p400)
		check("all", q.claim(at(3000), at(4000), 10), p100, p200, p300, p400, p500, p600)
	})

	t.Run("Retry", func(t *testing.T) {
		q := pushQueue{t, newStore(t)}
		ctx := t.Context()
		j := newPush(store.EventMessage, 1000)
		q.queue(j, cooldown)
		c := q.claimOne(at(1000), lease(at(1000)), j)
		must(t, q.s.RetryPush(ctx, c.DeviceID, c.Lease, at(5000)))
		q.pending(1)
		// Unclaimed, due at the new time, however the lease would have run.
		q.claimNone(at(4999))
		want := j
		want.Due, want.Attempts = at(5000), 1
		c2 := q.claimOne(at(5000), lease(at(5000)), want)
		wantErr(t, q.s.RetryPush(ctx, c.DeviceID, c.Lease, at(6000)), store.ErrConflict, "RetryPush with the first lease")

		// A retry due before its lease would end is claimable then.
		must(t, q.s.RetryPush(ctx, c2.DeviceID, c2.Lease, at(5001)))
		want.Due, want.Attempts = at(5001), 2
		c3 := q.claimOne(at(5001), lease(at(5001)), want)
		// A push of the same kind queued while one is being retried
		// changes nothing.
		q.queue(pushTo(j.DeviceID, store.EventMessage, 100), cooldown)
		must(t, q.s.RetryPush(ctx, c3.DeviceID, c3.Lease, at(7000)))
		want.Due, want.Attempts = at(7000), 3
		c4 := q.claimOne(at(7000), lease(at(7000)), want)
		q.done(c4, at(7000))
		q.pending(0)
		// A new push after it starts over.
		fresh := pushTo(j.DeviceID, store.EventMessage, 100_000)
		q.queue(fresh, cooldown)
		q.claimOne(at(100_000), lease(at(100_000)), fresh)
	})

	t.Run("Pending", func(t *testing.T) {
		q := pushQueue{t, newStore(t)}
		ctx := t.Context()
		var js []store.PushJob
		for i := range 5 {
			j := newPush(store.EventMessage, int64(i))
			q.queue(j, cooldown)
			js = append(js, j)
		}
		q.pending(5)
		c := q.claim(at(10), lease(at(10)), 3) // claimed: still pending
		q.pending(5)
		q.done(c[0], at(10)) // done: a cooldown marker, not pending
		q.pending(4)
		must(t, q.s.RetryPush(ctx, c[1].DeviceID, c[1].Lease, at(100)))
		q.pending(4)
		q.cancel(c[2].DeviceID)
		q.cancel(js[3].DeviceID)
		q.pending(2)
		// The marker turns into a push again when one is queued.
		q.queue(pushTo(c[0].DeviceID, store.EventMessage, 20), cooldown)
		q.pending(3)
	})

	t.Run("ConcurrentClaims", func(t *testing.T) {
		// Nodes claiming the same due pushes at once, with the same
		// clock: each push goes to exactly one of them.
		q := pushQueue{t, newStore(t)}
		const pushes, claimers = 40, 8
		want := make([]string, 0, pushes)
		for i := range pushes {
			j := newPush(store.EventMessage, int64(i))
			q.queue(j, cooldown)
			want = append(want, j.DeviceID)
		}
		now, until := at(1000), at(31_000)
		var mu sync.Mutex
		var got []string
		errs := make([]error, claimers)
		race(claimers, func(i int) {
			// Bounded, so that a store handing out pushes again fails
			// the test rather than hanging it.
			for range pushes + 1 {
				js, err := q.s.ClaimPushes(t.Context(), now, until, 3)
				if err != nil {
					errs[i] = err
					return
				}
				if len(js) == 0 {
					return
				}
				mu.Lock()
				got = append(got, pushIDs(js)...)
				mu.Unlock()
			}
		})
		for _, err := range errs {
			must(t, err)
		}
		if !slices.Equal(sorted(got), sorted(want)) {
			t.Fatalf("concurrent claims got %d pushes (%v), want each of %d once", len(got), got, pushes)
		}
		q.claimNone(now)
		q.pending(pushes)
	})

	t.Run("ConcurrentQueue", func(t *testing.T) {
		// Many events for one offline device at once, of both kinds: one
		// push, a message's, due no later than that message asked.
		q := pushQueue{t, newStore(t)}
		device := store.NewID(store.PrefixDevice)
		const n = 20
		jobs := make([]store.PushJob, n)
		for i := range jobs {
			kind := store.EventReceipt
			if i%4 == 3 {
				kind = store.EventMessage
			}
			jobs[i] = pushTo(device, kind, int64(1000+i))
		}
		errs := make([]error, n)
		race(n, func(i int) { errs[i] = q.s.QueuePush(t.Context(), jobs[i], cooldown) })
		for _, err := range errs {
			must(t, err)
		}
		q.pending(1)
		js := q.claim(at(2000), lease(at(2000)), 10)
		if len(js) != 1 || js[0].Kind != store.EventMessage {
			t.Fatalf("after concurrent queueing: %+v, want one message push", js)
		}
		i := slices.IndexFunc(jobs, func(j store.PushJob) bool { return j.MsgID == js[0].MsgID })
		if i < 0 {
			t.Fatalf("claimed push %+v is none of those queued", js[0])
		}
		// The earliest due of those queued before the message that
		// replaced the receipt, and the message's own: at most its due.
		if js[0].Due.After(jobs[i].Due) || js[0].Due.Before(at(1000)) {
			t.Fatalf("claimed push due %v, want from %v to %v", js[0].Due, at(1000), jobs[i].Due)
		}
		if w := jobs[i]; js[0].UserID != w.UserID || js[0].ChatID != w.ChatID || js[0].From != w.From || js[0].Text != w.Text {
			t.Fatalf("claimed push %+v mixes fields of several pushes; want those of %+v", js[0], w)
		}
	})
}
