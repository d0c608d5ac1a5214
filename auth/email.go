package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/tern-im/tern/mail"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// An email address is verified as a phone is: a code, kept hashed in the
// store's codes under a key of its own, with the same limits (resend wait,
// codes per hour, tries per code and address), sent by mail instead of SMS.
// The key names the user and the address, so that a code proves that this
// user reads this mailbox; the address is hashed into it because keys of
// the codes store are not free text.

// emailKeyPrefix starts the codes-store key of every email code; no
// normalised phone number starts so.
const emailKeyPrefix = "email:"

// emailKey is the codes-store key of userID's code for addr.
func emailKey(userID, addr string) string {
	sum := sha256.Sum256([]byte(addr))
	return emailKeyPrefix + userID + ":" + hex.EncodeToString(sum[:16])
}

// EmailEnabled reports whether the service sends mail.
func (s *Service) EmailEnabled() bool { return s.mail != nil }

// RequestEmailCode mails a code to email for userID to prove it reads it.
func (s *Service) RequestEmailCode(ctx context.Context, userID, email, clientIP string) (wire.CodeResponse, error) {
	if s.mail == nil {
		return wire.CodeResponse{}, wire.Errorf(wire.CodeUnsupported, "this server sends no email")
	}
	addr, err := mail.ParseAddress(email)
	if err != nil {
		return wire.CodeResponse{}, wire.Errorf(wire.CodeBadRequest, "email: %v", err)
	}
	code := newCode()
	key := emailKey(userID, addr)
	rec, prev, err := s.reserveCode(ctx, key, code, clientIP)
	if err != nil {
		return wire.CodeResponse{}, err
	}
	if err := s.mail.Send(ctx, mail.VerificationMessage(addr, code, "Tern")); err != nil {
		s.log.WarnContext(ctx, "auth: verification mail failed", "user", userID, "err", err)
		s.unreserveCode(ctx, rec, prev, clientIP)
		return wire.CodeResponse{}, wire.Errorf(wire.CodeUnavailable, "could not send the code, try again")
	}
	s.log.InfoContext(ctx, "auth: email code sent", "user", userID)
	return wire.CodeResponse{ExpiresIn: ceilSeconds(s.cfg.CodeTTL), RetryAfter: ceilSeconds(s.cfg.ResendAfter)}, nil
}

// VerifyEmail checks userID's code for email and, when it is right, makes
// email the user's address.
func (s *Service) VerifyEmail(ctx context.Context, userID, email, code, clientIP string) (store.User, error) {
	if s.mail == nil {
		return store.User{}, wire.Errorf(wire.CodeUnsupported, "this server sends no email")
	}
	addr, err := mail.ParseAddress(email)
	if err != nil {
		return store.User{}, wire.Errorf(wire.CodeBadRequest, "email: %v", err)
	}
	now := s.now()
	if ok, wait := s.verifiesByIP.take(clientIP, now); !ok {
		return store.User{}, rateLimited(wait, "too many verification attempts from this address")
	}
	key := emailKey(userID, addr)
	if err := s.checkCode(ctx, key, strings.TrimSpace(code), clientIP, now); err != nil {
		return store.User{}, err
	}
	s.codesByPhoneIP.forget(phoneIPKey(key, clientIP))
	u, err := s.st.UpdateProfile(ctx, userID, store.ProfilePatch{Email: &addr})
	if err != nil {
		return store.User{}, fmt.Errorf("auth: set email: %w", err)
	}
	s.log.InfoContext(ctx, "auth: email verified", "user", userID)
	return u, nil
}

// noticeNewDevice mails u, if it has an address, that device d signed in,
// in the background: a sign-in never waits for, or fails on, the mail.
func (s *Service) noticeNewDevice(u store.User, d store.Device, clientIP string) {
	if s.mail == nil || u.Email == "" {
		return
	}
	m := mail.NewDeviceMessage(u.Email, mail.NewDevice{Name: d.Name, Platform: d.Platform, IP: clientIP, At: d.CreatedAt})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.mail.Send(ctx, m); err != nil {
			s.log.Warn("auth: new device notice failed", "user", u.ID, "device", d.ID, "err", err)
		}
	}()
}
