package cloudapi

// Code points that glue or decorate emoji.
const (
	zwj          = 0x200D
	vs16         = 0xFE0F // emoji presentation selector
	keycapMark   = 0x20E3
	blackFlag    = 0x1F3F4 // base of the subdivision flags (England, Scotland, Wales)
	tagFirst     = 0xE0020
	tagLast      = 0xE007E
	tagCancel    = 0xE007F
	maxEmojiSize = 64 // bytes; the longest standard ZWJ sequences are about 35
)

// IsSingleEmoji reports whether s is exactly one emoji as users see it: a
// pictograph with optional presentation selector and skin tone, a keycap, a
// flag (regional-indicator pair or tag sequence), or ZWJ joins of these.
// A reaction shows one emoji, so "👍👍" or "ok" are refused.
//
// Go's unicode tables lack Extended_Pictographic, so pictographs are matched
// by the blocks that hold them; that admits some unassigned code points in
// those blocks, which is harmless for a reaction.
func IsSingleEmoji(s string) bool {
	if s == "" || len(s) > maxEmojiSize {
		return false
	}
	rs := []rune(s)
	i, ok := emojiElement(rs, 0)
	if !ok {
		return false
	}
	for i < len(rs) && rs[i] == zwj {
		if i, ok = emojiElement(rs, i+1); !ok {
			return false
		}
	}
	return i == len(rs)
}

// emojiElement matches one emoji element at rs[i] and returns the index
// after it.
func emojiElement(rs []rune, i int) (int, bool) {
	if i >= len(rs) {
		return i, false
	}
	r := rs[i]
	switch {
	case isRegionalIndicator(r):
		if i+1 < len(rs) && isRegionalIndicator(rs[i+1]) {
			return i + 2, true
		}
		return i, false
	case r == '#' || r == '*' || (r >= '0' && r <= '9'):
		i++
		if i < len(rs) && rs[i] == vs16 {
			i++
		}
		if i < len(rs) && rs[i] == keycapMark {
			return i + 1, true
		}
		return i, false
	case isPictographic(r):
		i++
		if i < len(rs) && rs[i] == vs16 {
			i++
		}
		if i < len(rs) && isSkinTone(rs[i]) {
			i++
		}
		if r == blackFlag && i < len(rs) && rs[i] >= tagFirst && rs[i] <= tagLast {
			for i < len(rs) && rs[i] >= tagFirst && rs[i] <= tagLast {
				i++
			}
			if i < len(rs) && rs[i] == tagCancel {
				return i + 1, true
			}
			return i, false
		}
		return i, true
	}
	return i, false
}

func isRegionalIndicator(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }

func isSkinTone(r rune) bool { return r >= 0x1F3FB && r <= 0x1F3FF }

// isPictographic approximates Extended_Pictographic with the blocks and
// code points that hold emoji.
func isPictographic(r rune) bool {
	switch r {
	case 0x00A9, 0x00AE, 0x203C, 0x2049, 0x2122, 0x2139, 0x2328, 0x2388, 0x23CF,
		0x24C2, 0x25B6, 0x25C0, 0x2B50, 0x2B55, 0x3030, 0x303D, 0x3297, 0x3299:
		return true
	}
	switch {
	case r >= 0x2194 && r <= 0x2199,
		r >= 0x21A9 && r <= 0x21AA,
		r >= 0x231A && r <= 0x231B,
		r >= 0x23E9 && r <= 0x23F3,
		r >= 0x23F8 && r <= 0x23FA,
		r >= 0x25AA && r <= 0x25AB,
		r >= 0x25FB && r <= 0x25FE,
		r >= 0x2600 && r <= 0x27BF,
		r >= 0x2934 && r <= 0x2935,
		r >= 0x2B05 && r <= 0x2B07,
		r >= 0x2B1B && r <= 0x2B1C,
		r >= 0x1F000 && r <= 0x1FAFF && !isRegionalIndicator(r),
		r >= 0x1FC00 && r <= 0x1FFFD:
		return true
	}
	return false
}
