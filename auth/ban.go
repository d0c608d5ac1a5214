package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// errBanned answers a banned user's sign-in and refresh. It says so: a
// ban is an operator's decision the user should know about, not a fault.
func errBanned() *wire.Error {
	return wire.Errorf(wire.CodeForbidden, "this account is banned")
}

// checkBan refuses a banned user, and a business's number: a business
// is used through the business API only, and a session on its number
// would read every customer's chat and could sign its API device out.
func (s *Service) checkBan(ctx context.Context, userID string) error {
	_, err := s.st.BanOf(ctx, userID)
	switch {
	case err == nil:
		return errBanned()
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("auth: reading the ban of %s: %w", userID, err)
	}
	_, err = s.st.Business(ctx, userID)
	switch {
	case err == nil:
		return wire.Errorf(wire.CodeForbidden, "this number belongs to a business account, which is used through the business API")
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("auth: reading the business of %s: %w", userID, err)
	}
	return nil
}

// Ban bans b.UserID and revokes every device of the user, which closes
// its sockets on every node (as a sign-out does). The ban is stored first:
// a sign-in racing it either sees it or made its device before the
// devices were listed here, and so loses it.
func (s *Service) Ban(ctx context.Context, b store.Ban) error {
	if b.TS == 0 {
		b.TS = s.now().UnixMilli()
	}
	if err := s.st.SetBan(ctx, b); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return wire.Errorf(wire.CodeNotFound, "no such user")
		}
		return fmt.Errorf("auth: ban %s: %w", b.UserID, err)
	}
	devices, err := s.st.UserDevices(ctx, b.UserID)
	if err != nil {
		return fmt.Errorf("auth: ban %s: listing devices: %w", b.UserID, err)
	}
	var errs []error
	for _, d := range devices {
		if err := s.deleteDevice(ctx, b.UserID, d.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("auth: ban %s: revoking devices: %w", b.UserID, errors.Join(errs...))
	}
	s.log.InfoContext(ctx, "auth: user banned", "user", b.UserID, "by", b.By, "devices", len(devices))
	return nil
}

// Unban lifts a ban; the user signs in again with a new code.
func (s *Service) Unban(ctx context.Context, userID string) error {
	if err := s.st.Unban(ctx, userID); err != nil {
		return fmt.Errorf("auth: unban %s: %w", userID, err)
	}
	s.log.InfoContext(ctx, "auth: user unbanned", "user", userID)
	return nil
}
