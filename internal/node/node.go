package node

import (
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/internal/health"
	"github.com/tern-im/tern/internal/safehttp"
	"github.com/tern-im/tern/internal/seal"
	"github.com/tern-im/tern/mail"
	"github.com/tern-im/tern/media"
	"github.com/tern-im/tern/media/fs"
	"github.com/tern-im/tern/media/s3"
	"github.com/tern-im/tern/push"
	pushlog "github.com/tern-im/tern/push/log"
	"github.com/tern-im/tern/push/webpush"
	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/routing/inproc"
	"github.com/tern-im/tern/routing/rabbitmq"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/embedded"
	"github.com/tern-im/tern/store/mongo"
)

// Store and router engines.
const (
	StoreEmbedded  = "embedded"
	StoreMongo     = "mongo"
	RouterInproc   = "inproc"
	RouterRabbitMQ = "rabbitmq"
	MediaFS        = "fs"
	MediaS3        = "s3"
)

// mediaSecret names the stored key that signs media/fs URLs: every node
// of a cluster must sign and check them with the same one.
const mediaSecret = "media-url-key"

// Config says which engines a node runs on and how it is tuned.
type Config struct {
	Store   string // StoreEmbedded (default) or StoreMongo
	DataDir string // embedded: where the database lives
	// MongoDB: URI, database name and write concern ("" for the default).
	MongoURI, MongoDB, MongoWriteConcern string
	Router                               string // RouterInproc (default) or RouterRabbitMQ
	AMQPURL                              string
	// Media is MediaFS (default: files under MediaDir, or DataDir/media,
	// served by the node on signed URLs under MediaBaseURL, where
	// clients reach it) or MediaS3 (S3).
	Media, MediaDir, MediaBaseURL string
	S3                            s3.Options
	// WrapRouter, if set, wraps the router (tests lose or reorder
	// envelopes with it).
	WrapRouter func(routing.Router) routing.Router

	Server server.Config
	Auth   auth.Config
	SMS    auth.Sender
	// Push wakes devices registered with FCM (push/fcm, or push/log);
	// devices registered as "log" or "apns" get the log.
	Push push.Notifier
	// WebPushContact is the contact push services may use to reach the
	// operator (an email address or an https URL); "" turns Web Push
	// off. WebPushClient sends its requests (nil: public addresses only,
	// internal/safehttp: endpoints come from browsers; any address with
	// Server.WebPushAllowPrivate).
	WebPushContact string
	WebPushClient  *http.Client
	// Mail sends email verification codes and new-device notices; nil:
	// no email.
	Mail mail.Sender
	// SMSName, PushName and MailName say which adapters SMS, Push and
	// Mail are ("http", "fcm", "smtp", ...), for the dashboard.
	SMSName, PushName, MailName string
	MasterKey                   []byte           // seals the stored secrets; nil: none
	Now                         func() time.Time // the auth clock; nil: time.Now
	// ChatNow is the clock of the chat rules (message times, edit and
	// delete windows, disappearing messages); nil: time.Now.
	ChatNow func() time.Time
	Log     *slog.Logger
	Version string
}

// Node is a built node: its adapters and its server.
type Node struct {
	Store  store.Store
	Media  media.Store
	Router routing.Router
	Auth   *auth.Service
	Server *server.Server
}

// Build opens the engines and builds the node on them. On error everything
// opened so far is closed again.
func Build(ctx context.Context, c Config) (_ *Node, err error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.SMS == nil || c.Push == nil {
		return nil, errors.New("node: an SMS sender and a push notifier are required")
	}
	n := &Node{}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	// Adapters are assigned only once opened: a nil *embedded.Store in the
	// interface would not be nil to Close.
	switch c.Store {
	case StoreMongo:
		var st *mongo.Store
		if st, err = mongo.Open(ctx, mongo.Config{URI: c.MongoURI, Database: c.MongoDB, WriteConcern: c.MongoWriteConcern, Log: c.Log}); err == nil {
			n.Store = st
		}
	case StoreEmbedded, "":
		var st *embedded.Store
		if st, err = embedded.Open(ctx, c.DataDir, embedded.Options{Log: c.Log}); err == nil {
			n.Store = st
		}
	default:
		err = fmt.Errorf("node: unknown store %q", c.Store)
	}
	if err != nil {
		return nil, err
	}
	if n.Media, err = openMedia(ctx, n.Store, &c); err != nil {
		return nil, err
	}
	if c.Server.UploadDir == "" && c.DataDir != "" && (c.Store == StoreEmbedded || c.Store == "") {
		// The data dir is this node's alone (the embedded store locks it);
		// a node on MongoDB may have none it can write, and uses the
		// system's temporary directory.
		if c.Server.UploadDir, err = uploadDir(c.DataDir, c.Log); err != nil {
			return nil, err
		}
	}
	switch c.Router {
	case RouterRabbitMQ:
		var r *rabbitmq.Router
		if r, err = rabbitmq.New(ctx, rabbitmq.Config{URL: c.AMQPURL, NodeID: c.Server.NodeID, Log: c.Log}); err == nil {
			n.Router = r
		}
	case RouterInproc, "":
		n.Router = inproc.New()
	default:
		err = fmt.Errorf("node: unknown router %q", c.Router)
	}
	if err != nil {
		return nil, err
	}
	if c.WrapRouter != nil {
		n.Router = c.WrapRouter(n.Router)
	}
	// The server closes revoked devices' sockets; auth learns of it
	// through OnRevoke, set before the server exists.
	// The dashboard shows how sending codes and mail goes lately.
	smsOutcomes, mailOutcomes := new(health.Outcomes), new(health.Outcomes)
	sms := recordedSMS{c.SMS, smsOutcomes}
	var mailer mail.Sender
	if c.Mail != nil {
		mailer = recordedMail{c.Mail, mailOutcomes}
	}
	n.Auth, err = auth.New(ctx, n.Store, sms, c.Auth, auth.Options{Log: c.Log, MasterKey: c.MasterKey, Now: c.Now, Mail: mailer,
		OnRevoke: func(userID, deviceID string) {
			if n.Server != nil {
				n.Server.DeviceRevoked(userID, deviceID)
			}
		}})
	if err != nil {
		return nil, err
	}
	logPush := pushlog.Notifier{Log: c.Log}
	mux := push.Mux{push.ProviderFCM: c.Push, "apns": logPush, "log": logPush}
	var vapidPublic string
	if c.WebPushContact != "" {
		keys, err := vapidKeys(ctx, n.Store, c.MasterKey)
		if err != nil {
			return nil, err
		}
		client := c.WebPushClient
		if client == nil {
			client = safehttp.NewClient(safehttp.Options{AllowPrivate: c.Server.WebPushAllowPrivate})
		}
		wp, err := webpush.New(webpush.Config{VAPID: keys, Subscriber: c.WebPushContact, HTTPClient: client, Log: c.Log})
		if err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		mux[push.ProviderWebPush], vapidPublic = wp, keys.Public
	}
	// The web client may load media from where its URLs point.
	if o := mediaOrigin(&c); o != "" {
		c.Server.MediaOrigins = append(c.Server.MediaOrigins, o)
	}
	n.Server, err = server.New(c.Server, server.Deps{Store: n.Store, Router: n.Router, Push: mux, VAPIDPublicKey: vapidPublic,
		Auth: n.Auth, Media: n.Media, Log: c.Log, Version: c.Version, Now: c.Now, ChatNow: c.ChatNow,
		Engines: c.engines(vapidPublic != ""), SMS: smsOutcomes, Mail: mailOutcomes, MasterKey: c.MasterKey})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// Close releases the router and the store (after the server stopped).
func (n *Node) Close() error {
	var errs []error
	if n.Router != nil {
		errs = append(errs, n.Router.Close())
	}
	if c, ok := n.Media.(interface{ Close() error }); ok {
		errs = append(errs, c.Close())
	}
	if n.Store != nil {
		if err := n.Store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// openMedia opens the media store c names.
func openMedia(ctx context.Context, st store.Store, c *Config) (media.Store, error) {
	switch c.Media {
	case MediaS3:
		s, err := s3.Open(ctx, c.S3)
		if err != nil {
			return nil, err
		}
		return s, nil
	case MediaFS, "":
		dir := c.MediaDir
		if dir == "" {
			if c.DataDir == "" {
				return nil, errors.New("node: media on fs needs a media dir (or a data dir)")
			}
			dir = filepath.Join(c.DataDir, "media")
		}
		secret, err := mediaKey(ctx, st, c.MasterKey)
		if err != nil {
			return nil, err
		}
		s, err := fs.New(fs.Options{Dir: dir, Secret: secret, BaseURL: c.MediaBaseURL, Logger: c.Log})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("node: unknown media store %q", c.Media)
}

// mediaKey is the key that signs media/fs links. Under a master key it is
// derived from it and stored nowhere, so a copy of the store (a backup, a
// database dump) cannot mint links; without one it is a random key kept
// in the store like the other secrets are then. Every node derives or
// reads the same key.
func mediaKey(ctx context.Context, st store.Secrets, master []byte) ([]byte, error) {
	if len(master) > 0 {
		m := hmac.New(sha256.New, master)
		m.Write([]byte("tern " + mediaSecret + " v1"))
		return m.Sum(nil), nil
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	secret, err := st.Secret(ctx, mediaSecret, fresh)
	if err != nil {
		return nil, fmt.Errorf("node: media url key: %w", err)
	}
	return secret, nil
}

// vapidSecret names the stored VAPID key pair: every node of a cluster
// must sign Web Push requests with the key browsers subscribed with.
const vapidSecret = "webpush-vapid"

// vapidDerived is what the store holds under vapidSecret when the pair
// derives from the master key: a node that starts without that key then
// refuses to, rather than make a new pair that orphans every subscription.
const vapidDerived = "derived:master-key"

// vapidKeys is the node's VAPID key pair. Every subscription is bound to
// its public half, so once browsers have it the pair must never change:
//
//   - without a master key it is generated once and kept in the store in
//     the clear;
//   - a master key given later seals that pair where it is, as auth seals
//     its key ring, rather than replace it;
//   - a node that starts with a master key on a store holding no pair
//     derives the pair from the key and stores only a marker saying so (a
//     copy of the store holds no private key).
func vapidKeys(ctx context.Context, st store.Secrets, master []byte) (webpush.VAPIDKeys, error) {
	if len(master) == 0 {
		fresh, err := webpush.GenerateKeys()
		if err != nil {
			return webpush.VAPIDKeys{}, err
		}
		b, err := json.Marshal(fresh)
		if err != nil {
			return webpush.VAPIDKeys{}, err
		}
		stored, err := st.Secret(ctx, vapidSecret, b)
		if err != nil {
			return webpush.VAPIDKeys{}, fmt.Errorf("node: VAPID keys: %w", err)
		}
		switch {
		case string(stored) == vapidDerived:
			return webpush.VAPIDKeys{}, errors.New("node: the VAPID keys derive from the master key: start with it")
		case seal.IsSealed(stored):
			return webpush.VAPIDKeys{}, errors.New("node: the VAPID keys in the store are sealed: start with the master key")
		}
		return decodeVAPID(stored)
	}
	// A few rereads when other nodes change the secret while this one
	// seals it.
	for range 5 {
		stored, err := st.Secret(ctx, vapidSecret, []byte(vapidDerived))
		if err != nil {
			return webpush.VAPIDKeys{}, fmt.Errorf("node: VAPID keys: %w", err)
		}
		switch {
		case string(stored) == vapidDerived:
			return deriveVAPID(master)
		case seal.IsSealed(stored):
			plain, err := seal.Open(master, vapidSecret, stored)
			if err != nil {
				return webpush.VAPIDKeys{}, err
			}
			return decodeVAPID(plain)
		}
		keys, err := decodeVAPID(stored)
		if err != nil {
			return webpush.VAPIDKeys{}, err
		}
		sealed, err := seal.Seal(master, vapidSecret, stored)
		if err != nil {
			return webpush.VAPIDKeys{}, err
		}
		switch err := st.ReplaceSecret(ctx, vapidSecret, stored, sealed); {
		case err == nil:
			return keys, nil
		case !errors.Is(err, store.ErrConflict):
			return webpush.VAPIDKeys{}, fmt.Errorf("node: seal the VAPID keys: %w", err)
		}
		// Another node sealed them meanwhile: read them again.
	}
	return webpush.VAPIDKeys{}, fmt.Errorf("node: seal the VAPID keys: they kept changing: %w", store.ErrConflict)
}

func decodeVAPID(b []byte) (webpush.VAPIDKeys, error) {
	var keys webpush.VAPIDKeys
	if err := json.Unmarshal(b, &keys); err != nil {
		return webpush.VAPIDKeys{}, fmt.Errorf("node: the stored VAPID keys are unreadable: %w", err)
	}
	return keys, nil
}

// deriveVAPID is the VAPID key pair that derives from the master key.
func deriveVAPID(master []byte) (webpush.VAPIDKeys, error) {
	// A P-256 scalar must be below the group order: the first derivation
	// that is (all but ~2^-32 of them) is the key.
	for i := range 64 {
		m := hmac.New(sha256.New, master)
		fmt.Fprintf(m, "tern %s v1 %d", vapidSecret, i)
		if k, err := ecdh.P256().NewPrivateKey(m.Sum(nil)); err == nil {
			return webpush.VAPIDKeys{
				Public:  base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()),
				Private: base64.RawURLEncoding.EncodeToString(k.Bytes()),
			}, nil
		}
	}
	return webpush.VAPIDKeys{}, errors.New("node: no VAPID key derives from the master key")
}

// uploadDir makes the directory uploads pass through under the data dir
// (not the system's temporary directory, often a small RAM disk) and
// removes what a crash left there.
func uploadDir(dataDir string, log *slog.Logger) (string, error) {
	dir := filepath.Join(dataDir, "uploads")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("node: upload dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("node: upload dir: %w", err)
	}
	for _, e := range entries {
		// Only this node writes here, and no request of it runs yet.
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			log.Warn("node: a leftover upload stays", "file", e.Name(), "err", err)
		}
	}
	return dir, nil
}

// mediaOrigin is the origin of media URLs when it is not the node's own:
// the S3 endpoint, or the fs store's base URL.
func mediaOrigin(c *Config) string {
	raw := c.MediaBaseURL
	if c.Media == MediaS3 {
		raw = c.S3.Endpoint
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
