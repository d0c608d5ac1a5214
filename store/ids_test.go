package store

import "testing"

func TestIDBytes(t *testing.T) {
	id := NewID(PrefixUser)
	b, ok := IDBytes(id, PrefixUser)
	if !ok || IDFromBytes(PrefixUser, b) != id {
		t.Fatalf("IDBytes(%q) = %x, %v; does not round-trip", id, b, ok)
	}
	last := id[len(id)-1]
	for _, bad := range []string{
		"",
		id[1:],                             // no prefix
		PrefixGroup + id[1:],               // another prefix
		id + "0",                           // too long
		id[:len(id)-1] + "!",               // not in the alphabet
		id[:len(id)-1] + string(last+1),    // non-canonical: the last character's two spare bits set
		"u" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ", // upper case
	} {
		if _, ok := IDBytes(bad, PrefixUser); ok && bad != id {
			t.Errorf("IDBytes(%q) accepted", bad)
		}
	}
}
