package node

import (
	"context"
	"time"

	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/internal/health"
	"github.com/tern-im/tern/mail"
	"github.com/tern-im/tern/server"
)

// engines names what the node runs on, defaults filled in.
func (c *Config) engines(webPush bool) server.Engines {
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	e := server.Engines{Store: or(c.Store, StoreEmbedded), Router: or(c.Router, RouterInproc), Media: or(c.Media, MediaFS),
		Push: or(c.PushName, "custom"), WebPush: webPush, SMS: or(c.SMSName, "custom")}
	if c.Mail != nil {
		e.Mail = or(c.MailName, "custom")
	}
	return e
}

// recordedSMS notes every send's outcome for the dashboard.
type recordedSMS struct {
	auth.Sender
	o *health.Outcomes
}

func (r recordedSMS) Send(ctx context.Context, to, text string) error {
	err := r.Sender.Send(ctx, to, text)
	r.o.Record(err, time.Now())
	return err
}

// recordedMail notes every mail's outcome for the dashboard.
type recordedMail struct {
	mail.Sender
	o *health.Outcomes
}

func (r recordedMail) Send(ctx context.Context, m mail.Message) error {
	err := r.Sender.Send(ctx, m)
	r.o.Record(err, time.Now())
	return err
}
