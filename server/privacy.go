package server

import (
	"net/http"
	"time"

	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// maxContacts bounds an address book: a phone's contacts, with room.
const maxContacts = 10_000

func privacyOf(u *store.User) wire.Privacy {
	p := wire.Privacy{LastSeen: u.Privacy.LastSeen, Online: u.Privacy.Online,
		ReadReceipts: !u.HideReadReceipts, GroupsAdd: u.Privacy.GroupsAdd}
	if p.LastSeen == "" {
		p.LastSeen = store.Everyone
	}
	if p.Online == "" {
		p.Online = store.Everyone
	}
	if p.GroupsAdd == "" {
		p.GroupsAdd = store.Everyone
	}
	return p
}

func (s *Server) handlePrivacy(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	u, err := s.st.User(r.Context(), c.UserID)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, privacyOf(&u))
}

// oneOf checks an optional setting against its allowed values.
func oneOf(field string, v *string, allowed ...string) *wire.Error {
	if v == nil {
		return nil
	}
	for _, a := range allowed {
		if *v == a {
			return nil
		}
	}
	return wire.Errorf(wire.CodeBadRequest, "%s must be one of %q", field, allowed)
}

func (s *Server) handlePatchPrivacy(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var p wire.PrivacyPatch
	if err := decode(w, r, &p); err != nil {
		s.writeErr(w, r, err)
		return
	}
	for _, e := range []*wire.Error{
		oneOf("last_seen", p.LastSeen, store.Everyone, store.Contacts, store.Nobody),
		oneOf("online", p.Online, store.Everyone, store.SameAsLastSeen),
		oneOf("groups_add", p.GroupsAdd, store.Everyone, store.Contacts),
	} {
		if e != nil {
			s.writeErr(w, r, e)
			return
		}
	}
	if !s.takeSetting(w, r, c) {
		return
	}
	patch := store.ProfilePatch{LastSeen: p.LastSeen, Online: p.Online, GroupsAdd: p.GroupsAdd}
	if p.ReadReceipts != nil {
		patch.HideReadReceipts = new(!*p.ReadReceipts)
	}
	u, err := s.st.UpdateProfile(r.Context(), c.UserID, patch)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if p.LastSeen != nil || p.Online != nil {
		s.presence.recheck(c.UserID)
	}
	writeJSON(w, http.StatusOK, privacyOf(&u))
}

// handleContacts saves the caller's address book (the numbers in E.164
// form; others are left out, as they match nobody). It answers nothing about
// who is behind the numbers: that is what the budgeted lookup is for, and
// an answer here would let anyone enumerate users without its limits.
func (s *Server) handleContacts(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var req wire.ContactsRequest
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if req.Phones == nil {
		s.writeErr(w, r, wire.Errorf(wire.CodeBadRequest, "phones is missing (send [] to clear the address book)"))
		return
	}
	if len(req.Phones) > maxContacts {
		s.writeErr(w, r, wire.Errorf(wire.CodeTooLarge, "at most %d phones in an address book", maxContacts))
		return
	}
	if !s.takeSetting(w, r, c) {
		return
	}
	seen := make(map[string]bool, len(req.Phones))
	phones := make([]string, 0, len(req.Phones))
	for _, p := range req.Phones {
		n, err := auth.NormalizePhone(p)
		if err != nil {
			// An address book holds local and malformed numbers too; as
			// in a lookup, they match nobody and are left out.
			continue
		}
		if !seen[n] {
			seen[n] = true
			phones = append(phones, n)
		}
	}
	if err := s.st.SetContacts(r.Context(), c.UserID, phones); err != nil {
		s.writeErr(w, r, err)
		return
	}
	// Who is in a contacts-only audience changed; with any other setting
	// the address book does not bear on presence.
	if u, err := s.st.User(r.Context(), c.UserID); err == nil && u.Privacy.LastSeen == store.Contacts {
		s.presence.recheck(c.UserID)
	}
	w.WriteHeader(http.StatusNoContent)
}

// takeSetting spends one of the user's settings changes this hour
// (Config.SettingsPerUserHour), or answers rate_limited and returns false.
// A malformed request spends nothing: the caller decodes it first.
func (s *Server) takeSetting(w http.ResponseWriter, r *http.Request, c auth.Claims) bool {
	if wait := s.settingsByUser.take(c.UserID, 1, time.Now()); wait > 0 {
		s.writeErr(w, r, rateLimited(wait, "changes to privacy, contacts and blocks this hour"))
		return false
	}
	return true
}
