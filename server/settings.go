package server

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tern-im/tern/media/imaging"
)

// The dashboard's settings read-out: what this node runs on and with which
// limits, each named with the flag that changes it. Read-only on purpose:
// settings are the node's command line (or TERN_* environment), the one
// place an operator's deployment tooling keeps them.

type setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Flag  string `json:"flag,omitempty"`
}

type settingsSection struct {
	Title string    `json:"title"`
	Items []setting `json:"items"`
}

func (s *Server) handleAdminSettings(w http.ResponseWriter, _ *http.Request, _ adminActor) {
	c, a, e := s.cfg, s.auth.Config(), s.stats.engines
	num := func(v int) string { return fmt.Sprint(v) }
	per := func(v int, unit string) string {
		if v <= 0 {
			return "unlimited"
		}
		return fmt.Sprintf("%d per %s", v, unit)
	}
	dur := func(d time.Duration) string { return d.String() }
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	var media []string
	for _, k := range []imaging.Kind{imaging.Image, imaging.Video, imaging.Audio, imaging.Document, imaging.Sticker} {
		media = append(media, fmt.Sprintf("%s %s", k, size(s.uploadLimit(k))))
	}
	origins := "this server's own"
	if len(c.AllowedOrigins) > 0 {
		origins = strings.Join(c.AllowedOrigins, ", ")
	}
	out := []settingsSection{
		{"Node", []setting{{"Node id", c.NodeID, "--node-id"}, {"Version", or(s.version, "unknown"), ""},
			{"Started", s.stats.started.UTC().Format(time.RFC3339), ""}}},
		{"Engines", []setting{{"Store", e.Store, "--store"}, {"Router", e.Router, "--router"}, {"Media", e.Media, "--media"},
			{"Push", e.Push, "--push"}, {"Web Push", yes(e.WebPush), "--web-push-contact"}, {"SMS", or(e.SMS, "none"), "--sms-provider"},
			{"Email", or(e.Mail, "none"), "--smtp-url"}}},
		{"Messages", []setting{{"Largest frame", size(int64(c.MaxFrameBytes)), "--max-frame-bytes"}, {"Longest text", size(int64(c.MaxTextBytes)), "--max-text-bytes"},
			{"Sends per device", fmt.Sprintf("%g/s, bursts of %d", c.SendsPerSecond, c.SendBurst), "--sends-per-second, --send-burst"},
			{"Unacknowledged events per socket", num(c.Window), "--window"}, {"History page", num(c.HistoryLimit), "--history-limit"},
			{"Group size", num(c.MaxGroupSize), ""}, {"Edit window", dur(c.EditWindow), "--edit-window"},
			{"Delete-for-everyone window", dur(c.DeleteWindow), "--delete-window"}, {"Idle socket timeout", dur(c.IdleTimeout), "--idle-timeout"}}},
		{"Media", []setting{{"Largest uploads", strings.Join(media, ", "), "--max-image-bytes, --max-video-bytes, ..."},
			{"Links work for", dur(c.MediaURLTTL), "--media-url-ttl"}, {"Uploads per user", per(c.UploadsPerUserHour, "hour"), "--uploads-per-user-hour"}}},
		{"Push", []setting{{"Text in pushes", yes(c.PushPreview), "--push-preview"}, {"Wait before a push", dur(c.PushDelay), "--push-delay"},
			{"Between pushes to a device", dur(c.PushCooldown), "--push-cooldown"}}},
		{"Sign-in", []setting{{"Code valid for", dur(a.CodeTTL), "--code-ttl"}, {"Tries per code", num(a.MaxAttemptsTotal), "--code-attempts-total"},
			{"Codes per phone", fmt.Sprintf("%s, %s", per(a.CodesPerPhonePerHour, "hour"), per(a.CodesPerPhonePerDay, "day")), "--codes-per-phone-hour, --codes-per-phone-day"},
			{"Codes per address", per(a.CodesPerIPPerHour, "hour"), "--codes-per-ip-hour"},
			{"Sign-ins per address", per(a.VerifiesPerIPPerHour, "hour"), "--verifies-per-ip-hour"},
			{"Access token lifetime", dur(a.AccessTTL), "--access-ttl"}, {"Session lifetime (refresh token)", dur(a.RefreshTTL), "--refresh-ttl"}}},
		{"Abuse limits", []setting{{"Contact lookups per user", per(c.LookupsPerUserDay, "day"), "--lookups-per-user-day"},
			{"Contact lookups per address", per(c.LookupsPerIPDay, "day"), "--lookups-per-ip-day"},
			{"Settings changes per user", per(c.SettingsPerUserHour, "hour"), "--settings-per-user-hour"},
			{"Email codes per user", per(c.EmailCodesPerUserHour, "hour"), "--email-codes-per-user-hour"}}},
		{"Network", []setting{{"Web origins allowed", origins, "--allowed-origins"}, {"Client address from X-Forwarded-For", yes(c.TrustProxy), "--trust-proxy"},
			{"Admin dashboard host", or(c.AdminHost, "any"), "--admin-host"}}},
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"sections": out})
}

// size writes a byte count in the largest binary unit it fills.
func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
