package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/wire"
)

// savedDevice is one device of a sessions file.
type savedDevice struct {
	Phone string `json:"phone"`
	wire.Session
}

// sessionsFile keeps device sessions between runs, so that reruns reuse
// users instead of signing up new ones. It holds refresh tokens: it is
// written with mode 0600.
type sessionsFile struct {
	Version int    `json:"version"`
	Server  string `json:"server"`
	RunID   string `json:"run_id"`
	// PerPhone is how many consecutive devices share one phone (one user):
	// 1 (or absent) for the pair and idle modes, the devices per member
	// in group mode.
	PerPhone int           `json:"devices_per_phone,omitempty"`
	Devices  []savedDevice `json:"devices"`
}

func (f *sessionsFile) perPhone() int { return max(f.PerPhone, 1) }

func loadSessions(path string) (*sessionsFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sessions file: %w", err)
	}
	var f sessionsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("sessions file %s: %w", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("sessions file %s: version %d, want 1", path, f.Version)
	}
	return &f, nil
}

func saveSessions(path string, f *sessionsFile) error {
	data, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".sessions-*")
	if err != nil {
		return fmt.Errorf("sessions file: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("sessions file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("sessions file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("sessions file: %w", err)
	}
	return nil
}

// ProvisionReport tells how the run got its device sessions.
type ProvisionReport struct {
	Devices   int     `json:"devices"`
	SignedUp  int     `json:"signed_up"` // new devices through phone verification
	Refreshed int     `json:"refreshed"` // sessions reused from the sessions file
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
}

// provision returns n clients with valid sessions, none connected. Each
// run of perPhone consecutive devices shares one phone, hence one user
// (device i is the (i mod perPhone)-th device of phone i/perPhone); n is a
// multiple of perPhone. The devices of one phone sign in one after
// another: a phone has one pending code at a time.
func (r *runner) provision(ctx context.Context, n, perPhone int, opts client.Options) ([]*client.Client, ProvisionReport, error) {
	start := time.Now()
	perPhone = max(perPhone, 1)
	if n%perPhone != 0 {
		return nil, ProvisionReport{}, fmt.Errorf("provision: %d devices are not whole phones of %d", n, perPhone)
	}
	var saved *sessionsFile
	if r.cfg.SessionsFile != "" {
		f, err := loadSessions(r.cfg.SessionsFile)
		if err != nil {
			return nil, ProvisionReport{}, err
		}
		saved = f
	}
	if saved != nil {
		if saved.Server != r.cfg.Addr {
			r.printf("note: %s was made against %s, not %s\n", r.cfg.SessionsFile, saved.Server, r.cfg.Addr)
		}
		if r.cfg.RunID != "" && r.cfg.RunID != saved.RunID {
			r.printf("note: using run id %q of %s, not %q\n", saved.RunID, r.cfg.SessionsFile, r.cfg.RunID)
		}
		if len(saved.Devices) > 0 && saved.perPhone() != perPhone {
			return nil, ProvisionReport{}, fmt.Errorf("sessions file %s holds %d devices per phone, this run needs %d: use another file",
				r.cfg.SessionsFile, saved.perPhone(), perPhone)
		}
		r.runID = saved.RunID
		r.printf("sessions: %d saved devices in %s\n", len(saved.Devices), r.cfg.SessionsFile)
	} else {
		if r.runID == "" {
			r.runID = newRunID()
		}
		saved = &sessionsFile{Version: 1, Server: r.cfg.Addr, RunID: r.runID}
	}
	if perPhone > 1 {
		saved.PerPhone = perPhone
	}
	r.printf("run id: %s (phones %s, %s, ...)\n", r.runID, newPhoneSeries(r.runID).phone(0), newPhoneSeries(r.runID).phone(1))
	phones := newPhoneSeries(r.runID)

	devs := make([]savedDevice, max(n, len(saved.Devices)))
	copy(devs, saved.Devices)
	clients := make([]*client.Client, n)
	var signedUp, refreshed atomic.Int64

	if len(saved.Devices) < n && r.cfg.CodeSource == nil {
		if err := r.startSink(); err != nil {
			return nil, ProvisionReport{}, err
		}
	}

	var done atomic.Int64
	stopProgress := r.progress("provision", n, &done)
	device := func(ctx context.Context, i int) error {
		defer done.Add(1)
		c := client.New(r.cfg.Addr, opts)
		clients[i] = c
		if i < len(saved.Devices) {
			c.SetSession(devs[i].Session)
			s, err := refreshRetry(ctx, c)
			if err == nil {
				devs[i].Session = s
				refreshed.Add(1)
				return nil
			}
			var herr *client.HTTPError
			if !errors.As(err, &herr) || herr.Status >= 500 || herr.Status == 429 {
				return fmt.Errorf("refresh saved device %d (%s): %w", i, devs[i].Phone, err)
			}
			// The server no longer knows the device (a wiped data dir,
			// a revoked device): sign the phone up again.
		}
		phone := phones.phone(i / perPhone)
		if devs[i].Phone != "" {
			phone = devs[i].Phone
		}
		if r.cfg.CodeSource == nil {
			if err := r.startSink(); err != nil {
				return err
			}
		}
		s, err := r.signUp(ctx, c, phone, i)
		if err != nil {
			return err
		}
		devs[i] = savedDevice{Phone: phone, Session: s}
		signedUp.Add(1)
		return nil
	}
	err := forEach(ctx, n/perPhone, r.cfg.Concurrency, func(ctx context.Context, p int) error {
		for i := p * perPhone; i < (p+1)*perPhone; i++ {
			if err := device(ctx, i); err != nil {
				return err
			}
		}
		return nil
	})
	stopProgress()
	if err != nil {
		return nil, ProvisionReport{}, err
	}
	if r.cfg.SessionsFile != "" {
		saved.Devices = devs
		if err := saveSessions(r.cfg.SessionsFile, saved); err != nil {
			return nil, ProvisionReport{}, err
		}
	}
	el := time.Since(start)
	rep := ProvisionReport{Devices: n, SignedUp: int(signedUp.Load()), Refreshed: int(refreshed.Load()),
		Seconds: el.Seconds(), PerSecond: float64(n) / el.Seconds()}
	r.printf("provision: %d devices (%d signed up, %d refreshed) in %s (%.0f/s)\n",
		n, rep.SignedUp, rep.Refreshed, el.Round(time.Millisecond), rep.PerSecond)
	return clients, rep, nil
}

// signUp verifies phone through the SMS code flow, retrying refusals that
// say when to come back and failures to reach the server a few times.
func (r *runner) signUp(ctx context.Context, c *client.Client, phone string, i int) (wire.Session, error) {
	code := r.cfg.CodeSource
	if code == nil {
		code = r.sink.codeFor
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var s wire.Session
		s, err = c.Login(ctx, phone, "bench-"+strconv.Itoa(i), "other", code)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			return wire.Session{}, ctx.Err()
		}
		var werr *wire.Error
		var herr *client.HTTPError
		switch {
		case errors.As(err, &werr) && werr.Code == wire.CodeRateLimited:
			if werr.RetryAfter > 5 {
				return wire.Session{}, fmt.Errorf("sign up %s: %w; start the server with "+
					"--codes-per-ip-hour 0 --verifies-per-ip-hour 0, and use a fresh --run-id", phone, err)
			}
			sleepCtx(ctx, time.Duration(max(werr.RetryAfter, 1))*time.Second)
		case errors.As(err, &herr) && herr.Status < 500:
			return wire.Session{}, fmt.Errorf("sign up %s: %w", phone, err)
		default:
			sleepCtx(ctx, time.Duration(attempt+1)*200*time.Millisecond)
		}
	}
	return wire.Session{}, fmt.Errorf("sign up %s: %w", phone, err)
}

func refreshRetry(ctx context.Context, c *client.Client) (wire.Session, error) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var s wire.Session
		s, err = c.Refresh(ctx)
		if err == nil {
			return s, nil
		}
		var herr *client.HTTPError
		if ctx.Err() != nil || (errors.As(err, &herr) && herr.Status < 500 && herr.Status != 429) {
			return wire.Session{}, err
		}
		sleepCtx(ctx, time.Duration(attempt+1)*200*time.Millisecond)
	}
	return wire.Session{}, err
}

func (r *runner) startSink() error {
	r.sinkOnce.Do(func() {
		r.sink, r.sinkErr = startSMSSink(r.cfg.SMSListen)
		if r.sinkErr == nil {
			r.printf("sms sink: listening on http://%s/\n", r.sink.ln.Addr())
		}
	})
	return r.sinkErr
}

// forEach runs fn(ctx, i) for i in [0, n) on at most conc goroutines and
// returns the first error, after which it starts nothing new.
func forEach(ctx context.Context, n, conc int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
