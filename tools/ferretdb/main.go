// Command ferretdb runs FerretDB v1 (the MongoDB wire protocol on SQLite)
// for the tests of store/mongo, so that they need no MongoDB server. It is a
// module of its own so that FerretDB's dependencies stay out of Tern's
// go.mod.
//
//	ferretdb --listen 127.0.0.1:0 --dir /tmp/x
//
// prints "listening on HOST:PORT" on stdout once it accepts connections and
// runs until SIGINT or SIGTERM (or, with --exit-on-stdin-eof, until its
// stdin closes).
//
// # Why a proxy in front of FerretDB
//
// FerretDB v1 applies update, findAndModify and upsert as "query the
// document, change it in Go, write it back by _id", in separate SQLite
// statements. Two concurrent $inc on one document can both read 5 and both
// write 6, and two conditional updates can both match. MongoDB applies every
// single-document write atomically, and store/mongo is built on that (its
// counters, compare-and-swap updates and chat locks). So FerretDB listens
// on a loopback port of its own, and this program listens in front of it
// and lets one write command at a time through (reads pass freely). That
// gives FerretDB MongoDB's per-document atomicity, and nothing more: a
// multi-document write is still a sequence of single-document writes to any
// reader, as it is on MongoDB. --serialize-writes=false turns the proxy off,
// which shows the difference.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free one)")
	dir := flag.String("dir", "", "directory of the SQLite files (required)")
	serialize := flag.Bool("serialize-writes", true, "let one write command at a time reach FerretDB, for MongoDB's per-document atomicity")
	verbose := flag.Bool("v", false, "log FerretDB's info messages")
	temp := flag.Bool("remove-dir", false, "remove --dir on exit")
	stdinEOF := flag.Bool("exit-on-stdin-eof", false, "exit when stdin closes: a parent that dies (a test binary that panics) takes this process with it")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "ferretdb: --dir is required")
		os.Exit(2)
	}
	// FerretDB logs every error it answers at warning level; the tests
	// provoke duplicate keys on purpose.
	level := slog.LevelError
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *stdinEOF {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}
	err := run(ctx, log, *listen, *dir, *serialize)
	if *temp {
		os.RemoveAll(*dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, listen, dir string, serialize bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	// _txlock=immediate takes SQLite's write lock when a transaction
	// starts, not at its first write, which avoids SQLITE_BUSY deadlocks
	// between concurrent writers.
	sqliteURL := (&url.URL{Scheme: "file", Path: abs + "/", RawQuery: "_txlock=immediate"}).String()
	fdb, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:    log,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fdb.Run(ctx) }()

	// MongoDBURI waits until FerretDB's listener is up.
	u, err := url.Parse(fdb.MongoDBURI())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	p := &proxy{backend: u.Host, serialize: serialize, log: log}
	go p.serve(ctx, ln)
	fmt.Printf("listening on %s\n", ln.Addr())

	<-ctx.Done()
	ln.Close()
	return <-done
}

// proxy forwards MongoDB wire messages between clients and FerretDB,
// holding writes while a write command is in flight.
type proxy struct {
	backend   string
	serialize bool
	writes    sync.Mutex
	log       *slog.Logger
}

func (p *proxy) serve(ctx context.Context, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				p.log.Error("accept", "err", err)
			}
			return
		}
		go p.handle(c)
	}
}

func (p *proxy) handle(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.backend)
	if err != nil {
		p.log.Error("dial FerretDB", "err", err)
		return
	}
	defer server.Close()
	cr, sr := bufio.NewReader(client), bufio.NewReader(server)
	for {
		req, err := readMessage(cr)
		if err != nil {
			return // the client went away
		}
		lock := p.serialize && isWrite(req)
		if lock {
			p.writes.Lock()
		}
		err = roundTrip(req, server, sr, client)
		if lock {
			p.writes.Unlock()
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.log.Warn("proxy", "err", err)
			}
			return
		}
	}
}

const (
	opQuery      = 2004
	opCompressed = 2012
	opMsg        = 2013

	flagMoreToCome = 1 << 1
	headerLen      = 16
	maxMessage     = 48 << 20 // MongoDB's maxMessageSizeBytes
)

// readMessage reads one whole wire message (header included).
func readMessage(r *bufio.Reader) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.LittleEndian.Uint32(head[:])))
	if n < headerLen || n > maxMessage {
		return nil, fmt.Errorf("bad message length %d", n)
	}
	msg := make([]byte, n)
	copy(msg, head[:])
	if _, err := io.ReadFull(r, msg[4:]); err != nil {
		return nil, err
	}
	return msg, nil
}

func opCode(msg []byte) int32 { return int32(binary.LittleEndian.Uint32(msg[12:16])) }

// moreToCome reports an OP_MSG that expects no reply (from a client) or
// that another reply follows (from the server).
func moreToCome(msg []byte) bool {
	return opCode(msg) == opMsg && len(msg) >= headerLen+4 &&
		binary.LittleEndian.Uint32(msg[headerLen:])&flagMoreToCome != 0
}

// roundTrip sends req and copies its replies back to the client.
func roundTrip(req []byte, server net.Conn, sr *bufio.Reader, client net.Conn) error {
	if _, err := server.Write(req); err != nil {
		return err
	}
	if moreToCome(req) {
		return nil // an unacknowledged write: no reply comes
	}
	for {
		reply, err := readMessage(sr)
		if err != nil {
			return err
		}
		if _, err := client.Write(reply); err != nil {
			return err
		}
		if !moreToCome(reply) {
			return nil
		}
	}
}

// writeCommands are the commands that change data; anything else that
// arrives as OP_MSG is a read and passes without the lock.
var writeCommands = map[string]bool{
	"insert": true, "update": true, "delete": true, "findAndModify": true,
	"create": true, "createIndexes": true, "drop": true, "dropIndexes": true,
	"dropDatabase": true, "renameCollection": true, "collMod": true,
}

// isWrite reports whether msg may change data. Messages it cannot read
// (compressed, unknown) count as writes, which is merely slower.
func isWrite(msg []byte) bool {
	switch opCode(msg) {
	case opQuery:
		return false // only the legacy handshake uses OP_QUERY
	case opMsg:
		name, ok := commandName(msg)
		return !ok || writeCommands[name]
	case opCompressed:
		return true
	}
	return true
}

// commandName returns the first key of the OP_MSG body (section kind 0),
// which is the command's name.
func commandName(msg []byte) (string, bool) {
	b := msg[headerLen+4:] // after the flag bits
	for len(b) > 0 {
		kind := b[0]
		b = b[1:]
		if len(b) < 4 {
			return "", false
		}
		size := int(int32(binary.LittleEndian.Uint32(b)))
		if size < 5 || size > len(b) {
			return "", false
		}
		if kind == 0 {
			doc := b[4:size] // element list, then the trailing 0
			if len(doc) < 2 {
				return "", false
			}
			name := doc[1:] // after the element's type byte
			for i, c := range name {
				if c == 0 {
					return string(name[:i]), true
				}
			}
			return "", false
		}
		b = b[size:] // a document sequence (kind 1): its size includes itself
	}
	return "", false
}
