package health

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOutcomes(t *testing.T) {
	var o Outcomes
	if s := o.Snapshot(); s.State != StateIdle {
		t.Fatalf("new: state %q, want idle", s.State)
	}
	var none *Outcomes
	if s := none.Snapshot(); s.State != StateIdle {
		t.Fatalf("nil: state %q, want idle", s.State)
	}
	t0 := time.Unix(1000, 0)
	o.Record(nil, t0)
	if s := o.Snapshot(); s.State != StateOK || s.OK != 1 || !s.LastOK.Equal(t0) {
		t.Fatalf("after a success: %+v", s)
	}
	o.Record(errors.New("gateway said 502"), t0.Add(time.Second))
	o.Record(errors.New(strings.Repeat("x", 1000)), t0.Add(2*time.Second))
	s := o.Snapshot()
	if s.State != StateFailing || s.Failed != 2 || s.ConsecutiveKO != 2 || !s.FailingSince.Equal(t0.Add(time.Second)) ||
		!s.LastFailure.Equal(t0.Add(2*time.Second)) || len(s.LastError) > maxErrorText+len("…") {
		t.Fatalf("after two failures: %+v", s)
	}
	o.Record(nil, t0.Add(3*time.Second))
	s = o.Snapshot()
	if s.State != StateOK || s.ConsecutiveKO != 0 || !s.FailingSince.IsZero() || s.Failed != 2 || s.LastError == "" {
		t.Fatalf("after recovering: %+v (the last error stays for the record)", s)
	}
}

func TestOutcomesHideURLs(t *testing.T) {
	var o Outcomes
	o.Record(errors.New(`sms http: post: Post "https://user:pw@gw.example.com/send?key=s3cret": dial tcp: i/o timeout`), time.Now())
	got := o.Snapshot().LastError
	if strings.Contains(got, "s3cret") || strings.Contains(got, "pw@") || !strings.Contains(got, "https://gw.example.com/…") {
		t.Fatalf("last error %q", got)
	}
}
