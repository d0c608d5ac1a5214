package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/business"
	"github.com/tern-im/tern/business/cloudapi"
	"github.com/tern-im/tern/internal/safehttp"
	"github.com/tern-im/tern/internal/seal"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// The business API (issue 13; docs/architecture.md, "Business API"). A
// business is a Tern user whose device is the API. This file makes
// businesses; the Cloud API endpoints and the webhook queue build on it.

// NewBusiness is what CreateBusiness needs.
type NewBusiness struct {
	Phone, Name             string
	WebhookURL, VerifyToken string // optional; checked with the Cloud API's GET before anything is made
	By, IP                  string // who asks, from where, for the audit log ("": the node's operator)
}

// BusinessCreated is what the operator gets once: the ids to configure
// SDKs with, the first API token and the webhook secret.
type BusinessCreated struct {
	UserID        string `json:"user_id"`
	PhoneNumberID string `json:"phone_number_id"`
	WABAID        string `json:"waba_id"`
	AccessToken   string `json:"access_token"`
	AppSecret     string `json:"app_secret"`
}

// businessDevicePlatform marks a business's API device: it never holds a
// socket, and its inbox is the webhook queue.
const businessDevicePlatform = "business_api"

// CreateBusiness turns a phone number nobody uses yet into a business
// account (tern business create, through the node's admin listener, or
// the admin API).
func (s *Server) CreateBusiness(ctx context.Context, nb NewBusiness) (BusinessCreated, error) {
	phone, err := auth.NormalizePhone(nb.Phone)
	if err != nil {
		return BusinessCreated{}, wire.Errorf(wire.CodeBadRequest, "phone %q is not a valid international number (+ and country code)", nb.Phone)
	}
	name := strings.TrimSpace(nb.Name)
	if name == "" {
		return BusinessCreated{}, wire.Errorf(wire.CodeBadRequest, "a business needs a name")
	}
	if e := wire.CheckName("name", name, 64); e != nil {
		return BusinessCreated{}, e
	}
	if (nb.WebhookURL == "") != (nb.VerifyToken == "") {
		return BusinessCreated{}, wire.Errorf(wire.CodeBadRequest, "a webhook URL and its verify token go together")
	}
	now := time.Now().UTC()
	var verified time.Time
	if nb.WebhookURL != "" {
		if err := s.checkWebhook(ctx, nb.WebhookURL, nb.VerifyToken); err != nil {
			return BusinessCreated{}, err
		}
		verified = now
	}
	u, created, err := s.st.EnsureUser(ctx, phone, store.NewID(store.PrefixUser), now)
	if err != nil {
		return BusinessCreated{}, fmt.Errorf("server: create business: %w", err)
	}
	// From here the steps finish even if the caller goes: a half-made
	// business would hold its number. One that a crash left half-made
	// (its user and API device, no record) is finished by a retry.
	ctx = context.WithoutCancel(ctx)
	dev, resumed, err := s.businessDevice(ctx, u.ID, created, now)
	if err != nil {
		return BusinessCreated{}, err
	}
	if !created && !resumed {
		// A person's number (or a business's already): a business needs
		// one of its own, else the person's phones would read its chats.
		return BusinessCreated{}, wire.Errorf(wire.CodeConflict, "%s is in use already; a business needs a number of its own", phone)
	}
	if _, err := s.st.UpdateProfile(ctx, u.ID, store.ProfilePatch{Name: &name}); err != nil {
		return BusinessCreated{}, fmt.Errorf("server: create business: %w", err)
	}
	secret := business.NewAppSecret()
	sealed, err := s.sealSecret(appSecretName(u.ID), []byte(secret))
	if err != nil {
		return BusinessCreated{}, err
	}
	// The token first: a record without one would leave the business
	// unusable, and its secret, shown once, lost.
	token, err := s.newBusinessToken(ctx, u.ID, "created with the business")
	if err != nil {
		return BusinessCreated{}, err
	}
	b := store.Business{UserID: u.ID, DeviceID: dev, Name: name, AppSecret: sealed, WebhookURL: nb.WebhookURL,
		VerifyToken: nb.VerifyToken, WebhookVerifiedAt: verified, WindowRule: true, RatePerSecond: business.DefaultRatePerSecond, CreatedAt: now}
	for try := 0; ; try++ {
		// Random 15-digit ids collide about never; a collision is retried.
		b.PhoneNumberID, b.WABAID = business.NewNumericID(), business.NewNumericID()
		err = s.st.CreateBusiness(ctx, b)
		if err == nil || !errors.Is(err, store.ErrConflict) || try == 3 {
			break
		}
	}
	if errors.Is(err, store.ErrConflict) {
		return BusinessCreated{}, wire.Errorf(wire.CodeConflict, "%s is a business already", phone)
	}
	if err == nil {
		s.addBizDevice(dev)
	}
	if err != nil {
		return BusinessCreated{}, fmt.Errorf("server: create business: %w", err)
	}
	by := nb.By
	if by == "" {
		by = "ops"
	}
	s.audit(ctx, by, "create_business", u.ID, phone+" "+name, nb.IP)
	return BusinessCreated{UserID: u.ID, PhoneNumberID: b.PhoneNumberID, WABAID: b.WABAID, AccessToken: token, AppSecret: secret}, nil
}

func appSecretName(userID string) string { return "business-app-secret:" + userID }

// sealSecret seals a stored secret under the master key, if the node has
// one, bound to its name.
func (s *Server) sealSecret(name string, secret []byte) ([]byte, error) {
	if s.master == nil {
		return secret, nil
	}
	sealed, err := seal.Seal(s.master, name, secret)
	if err != nil {
		return nil, fmt.Errorf("server: seal %s: %w", name, err)
	}
	return sealed, nil
}

// newBusinessToken makes an API token for a business; the token is
// shown this once, only its digest is kept.
func (s *Server) newBusinessToken(ctx context.Context, userID, name string) (string, error) {
	token, id, digest := business.NewToken()
	t := store.BusinessToken{ID: id, UserID: userID, Name: name, Hash: digest, CreatedAt: time.Now().UTC()}
	if err := s.st.PutBusinessToken(ctx, t); err != nil {
		return "", fmt.Errorf("server: business token: %w", err)
	}
	return token, nil
}

// checkWebhook asks a callback URL to echo a challenge, as Meta does
// before it sends a business anything: a URL that does not answer for
// this business is refused before it is used.
func (s *Server) checkWebhook(ctx context.Context, callback, verifyToken string) error {
	challenge, err := cloudapi.NewChallenge()
	if err != nil {
		return fmt.Errorf("server: webhook check: %w", err)
	}
	u, err := cloudapi.VerificationURL(callback, verifyToken, challenge)
	if err != nil {
		return wire.Errorf(wire.CodeBadRequest, "webhook URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return wire.Errorf(wire.CodeBadRequest, "webhook URL: %v", err)
	}
	client := safehttp.NewClient(safehttp.Options{Timeout: 10 * time.Second, AllowPrivate: s.cfg.WebhookAllowPrivate})
	res, err := client.Do(req)
	if err != nil {
		if errors.Is(err, safehttp.ErrForbiddenAddress) {
			return wire.Errorf(wire.CodeBadRequest, "webhook URL is not on a public address")
		}
		return wire.Errorf(wire.CodeBadRequest, "webhook URL did not answer the verification request: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
	if err := cloudapi.CheckVerificationAnswer(res.StatusCode, body, challenge); err != nil {
		return wire.Errorf(wire.CodeBadRequest, "webhook URL failed the verification (hub.challenge must come back with 200): %v", err)
	}
	return nil
}

// businessDevice returns the API device of a business being made: a new
// one for a new user; for an existing user, the API device a crashed
// creation left (resumed), or none if the number is a person's or a
// finished business's.
func (s *Server) businessDevice(ctx context.Context, userID string, created bool, now time.Time) (id string, resumed bool, err error) {
	if !created {
		if _, err := s.st.Business(ctx, userID); err == nil {
			return "", false, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", false, fmt.Errorf("server: create business: %w", err)
		}
		devs, err := s.st.UserDevices(ctx, userID)
		if err != nil {
			return "", false, fmt.Errorf("server: create business: %w", err)
		}
		if len(devs) != 1 || devs[0].Platform != businessDevicePlatform {
			return "", false, nil
		}
		return devs[0].ID, true, nil
	}
	dev := store.Device{ID: store.NewID(store.PrefixDevice), UserID: userID, Name: "Cloud API", Platform: businessDevicePlatform, CreatedAt: now}
	if err := s.st.CreateDevice(ctx, dev); err != nil {
		return "", false, fmt.Errorf("server: create business: %w", err)
	}
	return dev.ID, false, nil
}
