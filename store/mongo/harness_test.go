package mongo

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tern-im/tern/store/mongo/mongotest"
)

// The tests run against the server package mongotest provides: a real
// MongoDB when TERN_TEST_MONGO_URI is set, otherwise FerretDB on SQLite
// started for this test process. Every test gets a database of its own,
// dropped when it ends.

func TestMain(m *testing.M) {
	code := m.Run()
	mongotest.Stop()
	os.Exit(code)
}

// needServer skips or fails t if there is no database to test against, and
// returns the server's URI.
func needServer(t testing.TB) string {
	t.Helper()
	return mongotest.URI(t)
}

// dbName returns a fresh database name.
func dbName() string { return mongotest.DatabaseName() }

// openDB opens a Store on database name, closed when t ends.
func openDB(t testing.TB, name string, cfg Config) *Store {
	t.Helper()
	cfg.URI, cfg.Database = needServer(t), name
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open %s: %v", mongotest.Label(), err)
	}
	if mongotest.Label() == "FerretDB" {
		s.updateBatch = 50 // see Store.updateBatch
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// dropDB drops database name when t ends.
func dropDB(t testing.TB, name string) {
	t.Helper()
	mongotest.DropAtEnd(t, name)
}

// newStore opens a Store on a fresh database, dropped when t ends.
func newStore(t testing.TB) *Store {
	t.Helper()
	_, name := mongotest.NewDatabase(t) // registered first, so the drop runs after the Close
	return openDB(t, name, Config{})
}
