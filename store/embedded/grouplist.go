package embedded

import (
	"context"
	"fmt"
	"strings"

	"github.com/tern-im/tern/store"
)

// defaultGroupList is the page of ListGroups when the caller names none.
const defaultGroupList = 50

// ListGroups implements store.GroupList. It walks the group records
// (tGroups, keyed by chat id) from after and tests each one's name, which
// it decodes alone: the members are decoded only for the groups listed.
// There is no index by name, so a query that few groups match reads every
// group record: fine for the dashboard, which lists rarely.
func (s *Store) ListGroups(ctx context.Context, query, after string, limit int) ([]store.Group, error) {
	if limit < 1 {
		limit = defaultGroupList
	}
	lower := []byte{tGroups}
	if after != "" {
		// The first key above after: ids never hold a 0x00.
		lower = append(key(tGroups, after), 0)
	}
	q := strings.ToLower(query)
	var out []store.Group
	err := s.view(ctx, func(r reader) error {
		out = out[:0]
		read := 0
		return r.scan(lower, []byte{tGroups + 1}, func(k, v []byte) (bool, error) {
			if read++; read%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return false, err
				}
			}
			chatID := string(k[1:])
			if q != "" {
				d := decoder{b: v}
				d.format("group")
				name := d.str("name")
				if d.err != nil {
					return false, fmt.Errorf("group %s: %w", chatID, d.err)
				}
				if !strings.Contains(strings.ToLower(name), q) {
					return true, nil
				}
			}
			g, err := decodeGroup(chatID, v)
			if err != nil {
				return false, fmt.Errorf("group %s: %w", chatID, err)
			}
			out = append(out, g)
			return len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out, nil
}
