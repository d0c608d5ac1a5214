package mongotest

import (
	"context"
	"os"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

func TestModulePath(t *testing.T) {
	for in, want := range map[string]string{
		"module github.com/tern-im/tern\n\ngo 1.26\n":      "github.com/tern-im/tern",
		"// comment\nmodule \"github.com/tern-im/tern\"\n": "github.com/tern-im/tern",
		"module github.com/tern-im/tern/tools/ferretdb\n":  "github.com/tern-im/tern/tools/ferretdb",
		"go 1.26\n": "",
	} {
		if got := modulePath([]byte(in)); got != want {
			t.Errorf("modulePath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNewDatabase: a fresh database is usable, distinct per call, and
// dropped when its test ends.
func TestNewDatabase(t *testing.T) {
	var name string
	t.Run("use", func(t *testing.T) {
		uri, n := NewDatabase(t)
		if _, other := NewDatabase(t); other == n {
			t.Fatalf("two fresh databases named %s", n)
		}
		name = n
		client, err := mongo.Connect(options.Client().ApplyURI(uri))
		if err != nil {
			t.Fatal(err)
		}
		defer client.Disconnect(context.Background())
		if _, err := client.Database(n).Collection("c").InsertOne(t.Context(), bson.D{{Key: "x", Value: 1}}); err != nil {
			t.Fatalf("insert into %s on %s: %v", n, Label(), err)
		}
	})
	if name == "" {
		return // skipped: no server
	}
	client, err := mongo.Connect(options.Client().ApplyURI(URI(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	names, err := client.ListDatabaseNames(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, name) {
		t.Fatalf("database %s still there after its test ended: %v", name, names)
	}
}
