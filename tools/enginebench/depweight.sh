#!/usr/bin/env bash
# depweight.sh: what each engine would add to the main module if it were
# imported alone: modules in go.sum, require lines in go.mod, non-std
# packages compiled, cold build time (on top of a warm std cache) and
# binary size. Uses the same versions as this module's go.mod.
#
#   bash depweight.sh            # all engines
#   bash depweight.sh bbolt      # one engine
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/depweight.XXXXXX)
trap 'rm -rf "$work"' EXIT

ver() { (cd "$here" && go list -m -f '{{.Version}}' "$1"); }

declare -A MOD IMPORT BODY
MOD[bbolt]="go.etcd.io/bbolt@$(ver go.etcd.io/bbolt)"
IMPORT[bbolt]='bolt "go.etcd.io/bbolt"'
BODY[bbolt]='db, err := bolt.Open(os.Args[1], 0o600, nil)
	if err != nil {
		panic(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	if err != nil {
		panic(err)
	}
	db.Close()'

MOD[pebble]="github.com/cockroachdb/pebble/v2@$(ver github.com/cockroachdb/pebble/v2)"
IMPORT[pebble]='pebble "github.com/cockroachdb/pebble/v2"'
BODY[pebble]='db, err := pebble.Open(os.Args[1], &pebble.Options{})
	if err != nil {
		panic(err)
	}
	if err := db.Set([]byte("k"), []byte("v"), pebble.Sync); err != nil {
		panic(err)
	}
	db.Close()'

MOD[pebble-v1]="github.com/cockroachdb/pebble@$(ver github.com/cockroachdb/pebble)"
IMPORT[pebble-v1]='"github.com/cockroachdb/pebble"'
BODY[pebble-v1]=${BODY[pebble]}

MOD[sqlite]="modernc.org/sqlite@$(ver modernc.org/sqlite)"
IMPORT[sqlite]='"database/sql"

	_ "modernc.org/sqlite"'
BODY[sqlite]='db, err := sql.Open("sqlite", os.Args[1])
	if err != nil {
		panic(err)
	}
	if _, err := db.Exec("CREATE TABLE t(k, v)"); err != nil {
		panic(err)
	}
	db.Close()'

engines=("$@")
[ ${#engines[@]} -eq 0 ] && engines=(bbolt pebble pebble-v1 sqlite)

# One std-only cache, warmed once and copied per engine, so build times
# measure the engine's own packages and not the standard library.
export GOFLAGS=-mod=mod
base=$work/gocache-std
GOCACHE=$base go build std

printf '| engine | module | go.sum modules (with code / total) | go.mod requires | non-std packages | cold build s | binary MB |\n'
printf '|---|---|--:|--:|--:|--:|--:|\n'
for e in "${engines[@]}"; do
	d=$work/$e
	mkdir -p "$d"
	cat >"$d/main.go" <<EOF
package main

import (
	"os"

	${IMPORT[$e]}
)

func main() {
	${BODY[$e]}
}
EOF
	(cd "$d" && go mod init depweight/$e >/dev/null 2>&1 && go get "${MOD[$e]}" >/dev/null 2>&1 && go mod tidy >/dev/null 2>&1)
	withcode=$(grep -v '/go.mod ' "$d/go.sum" | awk '{print $1}' | sort -u | wc -l)
	total=$(awk '{print $1}' "$d/go.sum" | sort -u | wc -l)
	requires=$(awk '/^require \(/{f=1;next} f&&/^\)/{f=0} f&&NF{n++} /^require [^(]/{n++} END{print n+0}' "$d/go.mod")
	pkgs=$(cd "$d" && go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' . | grep -vc "^depweight/" || true)
	cp -r "$base" "$work/gocache-$e"
	start=$(date +%s.%N)
	(cd "$d" && GOCACHE=$work/gocache-$e go build -o "$d/bin" .)
	end=$(date +%s.%N)
	rm -rf "$work/gocache-$e"
	size=$(stat -c %s "$d/bin")
	printf '| %s | %s | %d / %d | %d | %d | %.1f | %.1f |\n' "$e" "${MOD[$e]}" "$withcode" "$total" "$requires" "$pkgs" \
		"$(echo "$end - $start" | bc)" "$(echo "scale=1; $size / 1048576" | bc)"
done
