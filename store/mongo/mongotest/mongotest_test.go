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
