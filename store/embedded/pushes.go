package embedded

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/tern-im/tern/store"
)

// The push queue is two tables. tPushes holds one record per device that
// has a push queued or was pushed since it last connected: the push, and
// the time of the last one, which a later QueuePush needs for the
// cooldown. Keeping both in one record makes every operation one point
// read and one write of it, and lets a cooldown outlive its push without
// counting as one. tPushDue indexes the queued pushes by due time, so
// that a claim reads the due ones from the table's start and nothing
// else, and PendingPushes counts keys without reading records. Its value
// is the end of the push's lease, if it has one: a claim skips the pushes
// still leased without reading their records. Those are few, the ones
// being sent right now (and a dead node's, for one lease).
//
// Every write goes through the writer, which is what makes a claim
// exclusive: two claims are two requests applied one after the other,
// and the second reads the first's leases in the batch.
//
// Done pushes leave tombstones at the front of tPushDue, which claims
// walk until compaction drops them; the queue holds only pushes waiting
// for a few seconds or being retried, so that is a short walk next to
// the inboxes.

// pushRecord is a device's record in tPushes. Times are unix milliseconds.
type pushRecord struct {
	Job *pushJob `json:"job,omitempty"` // nil: only a cooldown
	// Sent is when the device was last pushed (DonePush); nil if it was
	// not since it connected.
	Sent *int64 `json:"sent,omitempty"`
}

type pushJob struct {
	User     string `json:"u,omitempty"`
	Kind     string `json:"k,omitempty"`
	Chat     string `json:"c,omitempty"`
	Msg      string `json:"m,omitempty"`
	From     string `json:"f,omitempty"`
	Text     string `json:"t,omitempty"`
	Due      int64  `json:"due"`
	Attempts int    `json:"a,omitempty"`
	Lease    string `json:"l,omitempty"`
	Until    int64  `json:"until,omitempty"` // the lease's end, with Lease
}

func (j *pushJob) push(device string) store.PushJob {
	return store.PushJob{DeviceID: device, UserID: j.User, Kind: j.Kind, ChatID: j.Chat, MsgID: j.Msg,
		From: j.From, Text: j.Text, Due: time.UnixMilli(j.Due).UTC(), Attempts: j.Attempts, Lease: j.Lease}
}

// pushDueKey is the key of device's push in tPushDue. The due time is
// sign-flipped as in createdKey, so that a zero time.Time sorts first and
// is due, not last and never.
func pushDueKey(due int64, device string) []byte {
	b := make([]byte, 0, 1+8+len(device))
	b = append(b, tPushDue)
	b = binary.BigEndian.AppendUint64(b, createdKey(due))
	return append(b, device...)
}

// pushDueEnd is the exclusive upper bound of the tPushDue keys due at or
// before now.
func pushDueEnd(now int64) []byte {
	k := createdKey(now)
	if k == ^uint64(0) {
		return []byte{tPushDue + 1}
	}
	return binary.BigEndian.AppendUint64([]byte{tPushDue}, k+1)
}

// leaseValue is the tPushDue value of a push leased until until.
func leaseValue(until int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), createdKey(until))
}

// getPush reads device's record as of the round so far; the zero record
// if there is none.
func (w *wtx) getPush(device string) (pushRecord, error) {
	var rec pushRecord
	k := key(tPushes, device)
	raw := w.get(k)
	if w.err != nil {
		return rec, w.err
	}
	if raw == nil {
		return rec, nil
	}
	return rec, decodeJSON(k, raw, &rec)
}

// putPush writes device's record and, if it holds a push, the push's
// index key. The caller deletes the old index key first if the due time
// changed: the index holds one key per push.
func (w *wtx) putPush(device string, rec pushRecord) {
	v, err := json.Marshal(rec)
	if err != nil {
		w.setErr(fmt.Errorf("encode push of %s: %w", device, err))
		return
	}
	w.put(key(tPushes, device), v)
	if j := rec.Job; j != nil {
		iv := []byte{}
		if j.Lease != "" {
			iv = leaseValue(j.Until)
		}
		w.put(pushDueKey(j.Due, device), iv)
	}
}

// scanFunc is reader.scan or wtx.scan.
type scanFunc func(lower, upper []byte, fn func(k, v []byte) (bool, error)) error

// millis is t in whole unix milliseconds, as the queue keeps times.
func millis(t time.Time) int64 { return t.UnixMilli() }

func newLease() string {
	return strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
}

// QueuePush implements store.Pushes.
func (s *Store) QueuePush(ctx context.Context, j store.PushJob, cooldown time.Duration) error {
	if !validID(j.DeviceID) {
		return fmt.Errorf("queue push: %w", errInvalid("device id"))
	}
	job := pushJob{User: j.UserID, Kind: j.Kind, Chat: j.ChatID, Msg: j.MsgID, From: j.From, Text: j.Text,
		Due: millis(j.Due)}
	err := s.write(ctx, func(w *wtx) error {
		rec, err := w.getPush(j.DeviceID)
		if err != nil {
			return err
		}
		nj := job
		if rec.Sent != nil && cooldown > 0 {
			nj.Due = max(nj.Due, millis(time.UnixMilli(*rec.Sent).Add(cooldown)))
		}
		if old := rec.Job; old != nil {
			if j.Kind != store.EventMessage || old.Kind == store.EventMessage {
				return nil // the burst's first push names it
			}
			nj.Due = min(nj.Due, old.Due)
			w.del(pushDueKey(old.Due, j.DeviceID))
		}
		rec.Job = &nj
		w.putPush(j.DeviceID, rec)
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue push to %s: %w", j.DeviceID, err)
	}
	return nil
}

// CancelPush implements store.Pushes.
func (s *Store) CancelPush(ctx context.Context, deviceID string) error {
	if !validID(deviceID) {
		return nil // no such device can have a push
	}
	err := s.write(ctx, func(w *wtx) error {
		k := key(tPushes, deviceID)
		raw := w.get(k)
		if raw == nil {
			return nil // most connects: nothing to write, nor to sync
		}
		var rec pushRecord
		if err := decodeJSON(k, raw, &rec); err != nil {
			return err
		}
		if rec.Job != nil {
			w.del(pushDueKey(rec.Job.Due, deviceID))
		}
		w.del(k)
		return nil
	})
	if err != nil {
		return fmt.Errorf("cancel push to %s: %w", deviceID, err)
	}
	return nil
}

// ClaimPushes implements store.Pushes.
func (s *Store) ClaimPushes(ctx context.Context, now, until time.Time, limit int) ([]store.PushJob, error) {
	if limit < 1 {
		return nil, nil
	}
	nowMs, untilMs := millis(now), millis(until)
	nowKey := createdKey(nowMs)
	// claimable walks the claimable pushes in order, up to n of them.
	claimable := func(scan scanFunc, n int, fn func(device string, due int64)) error {
		return scan([]byte{tPushDue}, pushDueEnd(nowMs), func(k, v []byte) (bool, error) {
			if len(k) <= 1+8 {
				return false, fmt.Errorf("%w: push index key %q", errCorrupt, k)
			}
			if len(v) >= 8 && binary.BigEndian.Uint64(v) > nowKey {
				return true, nil // leased, and the lease runs
			}
			fn(string(k[1+8:]), int64(binary.BigEndian.Uint64(k[1:9])^1<<63)) // createdKey undone
			n--
			return n > 0, nil
		})
	}
	// Every node polls, mostly finding nothing: a read answers that
	// without queueing behind the writer's fsyncs.
	found := false
	err := s.view(ctx, func(r reader) error {
		return claimable(r.scan, 1, func(string, int64) { found = true })
	})
	if err != nil {
		return nil, fmt.Errorf("claim pushes: %w", err)
	}
	if !found {
		return nil, nil
	}
	var out []store.PushJob
	err = s.write(ctx, func(w *wtx) error {
		out = out[:0] // a retried request starts over
		var devices []string
		var dues []int64
		err := claimable(w.scan, limit, func(device string, due int64) {
			devices = append(devices, device)
			dues = append(dues, due)
		})
		if err != nil {
			return err
		}
		// Decoded and checked before the first write: a corrupt record
		// must fail the request with nothing in the batch.
		recs := make([]pushRecord, len(devices))
		for i, d := range devices {
			if recs[i], err = w.getPush(d); err != nil {
				return err
			}
			if recs[i].Job == nil || recs[i].Job.Due != dues[i] {
				return fmt.Errorf("%w: push index key of %s at %d without its push", errCorrupt, d, dues[i])
			}
		}
		for i, d := range devices {
			j := recs[i].Job
			j.Lease, j.Until = newLease(), untilMs
			w.putPush(d, recs[i])
			out = append(out, j.push(d))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim pushes: %w", err)
	}
	return out, nil
}

// leased reads device's record and checks that its push is leased to
// lease: store.ErrConflict if not.
func (w *wtx) leased(device, lease string) (pushRecord, error) {
	rec, err := w.getPush(device)
	if err != nil {
		return rec, err
	}
	if rec.Job == nil || rec.Job.Lease != lease {
		return rec, store.ErrConflict
	}
	return rec, nil
}

// DonePush implements store.Pushes.
func (s *Store) DonePush(ctx context.Context, deviceID, lease string, sentAt time.Time) error {
	if !validID(deviceID) || lease == "" {
		return fmt.Errorf("finish push to %q: %w", deviceID, store.ErrConflict)
	}
	sent := millis(sentAt)
	err := s.write(ctx, func(w *wtx) error {
		rec, err := w.leased(deviceID, lease)
		if err != nil {
			return err
		}
		w.del(pushDueKey(rec.Job.Due, deviceID))
		w.putPush(deviceID, pushRecord{Sent: &sent})
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish push to %s: %w", deviceID, err)
	}
	return nil
}

// RetryPush implements store.Pushes.
func (s *Store) RetryPush(ctx context.Context, deviceID, lease string, due time.Time) error {
	if !validID(deviceID) || lease == "" {
		return fmt.Errorf("retry push to %q: %w", deviceID, store.ErrConflict)
	}
	dueMs := millis(due)
	err := s.write(ctx, func(w *wtx) error {
		rec, err := w.leased(deviceID, lease)
		if err != nil {
			return err
		}
		j := *rec.Job
		w.del(pushDueKey(j.Due, deviceID))
		j.Due, j.Lease, j.Until = dueMs, "", 0
		j.Attempts++
		rec.Job = &j
		w.putPush(deviceID, rec)
		return nil
	})
	if err != nil {
		return fmt.Errorf("retry push to %s: %w", deviceID, err)
	}
	return nil
}

// PendingPushes implements store.Pushes: it counts the index, which holds
// one key per queued push and none for a cooldown.
func (s *Store) PendingPushes(ctx context.Context) (int, error) {
	n := 0
	err := s.view(ctx, func(r reader) error {
		n = 0
		return r.scan([]byte{tPushDue}, []byte{tPushDue + 1}, func(_, _ []byte) (bool, error) {
			n++
			return true, nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("pending pushes: %w", err)
	}
	return n, nil
}
