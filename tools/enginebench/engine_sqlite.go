package main

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"

	_ "modernc.org/sqlite"
)

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS chat_log(
	chat INTEGER NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL,
	PRIMARY KEY(chat, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idem(
	device INTEGER NOT NULL, client_id BLOB NOT NULL, val BLOB NOT NULL,
	PRIMARY KEY(device, client_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox(
	device INTEGER NOT NULL, cursor INTEGER NOT NULL, body BLOB NOT NULL,
	PRIMARY KEY(device, cursor)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chat_meta(
	chat INTEGER PRIMARY KEY, val BLOB NOT NULL);
`

type sqliteEngine struct {
	db    *sql.DB // pool limited to the writer's one connection
	fold  bool
	point bool
	ctx   context.Context

	selIdem, insIdem, insLog, insInbox, upMeta, delInbox, delOne *sql.Stmt
}

func sqliteDSN(dir string) string {
	return "file:" + filepath.Join(dir, "tern.sqlite") + "?_txlock=immediate" +
		"&_pragma=journal_mode(WAL)" +
		// FULL in WAL mode: every commit fsyncs the WAL, so a commit is durable.
		"&_pragma=synchronous(FULL)" +
		"&_pragma=cache_size(-65536)" + // 64 MiB, like pebble's block cache
		"&_pragma=busy_timeout(5000)"
}

func openSQLite(dir string, o engineOpts) (engine, error) {
	db, err := sql.Open("sqlite", sqliteDSN(dir))
	if err != nil {
		return nil, err
	}
	// One connection: statements prepared on the pool are then reused by
	// every transaction, and the per-connection synchronous toggle below
	// always hits the connection that commits.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	ctx := context.Background()
	e := &sqliteEngine{db: db, fold: o.ack != ackSeparate, point: o.pointDeletes, ctx: ctx}
	if _, err := db.ExecContext(ctx, sqliteSchema); err != nil {
		e.close()
		return nil, err
	}
	prep := func(dst **sql.Stmt, q string) {
		if err != nil {
			return
		}
		*dst, err = db.PrepareContext(ctx, q)
	}
	prep(&e.selIdem, "SELECT 1 FROM idem WHERE device=? AND client_id=?")
	prep(&e.insIdem, "INSERT INTO idem(device, client_id, val) VALUES(?,?,?)")
	prep(&e.insLog, "INSERT INTO chat_log(chat, seq, body) VALUES(?,?,?)")
	prep(&e.insInbox, "INSERT INTO inbox(device, cursor, body) VALUES(?,?,?)")
	prep(&e.upMeta, "INSERT INTO chat_meta(chat, val) VALUES(?,?) ON CONFLICT(chat) DO UPDATE SET val=excluded.val")
	prep(&e.delInbox, "DELETE FROM inbox WHERE device=? AND cursor<=?")
	prep(&e.delOne, "DELETE FROM inbox WHERE device=? AND cursor=?")
	if err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// By default (auto, fold) SQLite puts the acks into the message transaction:
// the WAL frames of a page touched by both are then written once, and no
// extra commit is needed. Rounds with only acks, and -ack-commit separate,
// use a synchronous=NORMAL transaction.
func (e *sqliteEngine) ackStrategy() string {
	if e.fold {
		return "same tx as msgs"
	}
	return "own tx, synchronous=NORMAL"
}

func (e *sqliteEngine) applyAcks(tx *sql.Tx, acks *ackWork) error {
	del := tx.StmtContext(e.ctx, e.delInbox)
	delOne := tx.StmtContext(e.ctx, e.delOne)
	for _, d := range acks.dels {
		if e.point {
			for c := d.from; c <= d.upTo; c++ {
				if _, err := delOne.ExecContext(e.ctx, int64(d.device), int64(c)); err != nil {
					return err
				}
			}
			continue
		}
		if _, err := del.ExecContext(e.ctx, int64(d.device), int64(d.upTo)); err != nil {
			return err
		}
	}
	ins := tx.StmtContext(e.ctx, e.insInbox)
	for _, p := range acks.puts {
		if _, err := ins.ExecContext(e.ctx, int64(p.device), int64(p.cursor), p.val); err != nil {
			return err
		}
	}
	return nil
}

func (e *sqliteEngine) inTx(f func(tx *sql.Tx) error) error {
	tx, err := e.db.BeginTx(e.ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (e *sqliteEngine) commit(msgs []msgWrite, acks *ackWork) (int, error) {
	if !acks.empty() && (!e.fold || len(msgs) == 0) {
		// In WAL mode synchronous=NORMAL skips the fsync at commit; the
		// WAL is synced at the next FULL commit (or checkpoint). A crash can
		// lose this transaction but cannot corrupt the database, and
		// synchronous is a per-connection setting we can flip between
		// transactions on the writer's connection.
		if _, err := e.db.ExecContext(e.ctx, "PRAGMA synchronous=NORMAL"); err != nil {
			return 0, err
		}
		err := e.inTx(func(tx *sql.Tx) error { return e.applyAcks(tx, acks) })
		if _, err2 := e.db.ExecContext(e.ctx, "PRAGMA synchronous=FULL"); err == nil {
			err = err2
		}
		if err != nil {
			return 0, err
		}
		acks = &ackWork{}
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	dups := 0
	err := e.inTx(func(tx *sql.Tx) error {
		dups = 0
		if !acks.empty() {
			if err := e.applyAcks(tx, acks); err != nil {
				return err
			}
		}
		sel := tx.StmtContext(e.ctx, e.selIdem)
		insIdem := tx.StmtContext(e.ctx, e.insIdem)
		insLog := tx.StmtContext(e.ctx, e.insLog)
		insInbox := tx.StmtContext(e.ctx, e.insInbox)
		upMeta := tx.StmtContext(e.ctx, e.upMeta)
		for i := range msgs {
			m := &msgs[i]
			var one int
			err := sel.QueryRowContext(e.ctx, int64(m.idemDev), m.idemID).Scan(&one)
			if err == nil {
				dups++
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if _, err := insIdem.ExecContext(e.ctx, int64(m.idemDev), m.idemID, m.idemVal); err != nil {
				return err
			}
			if _, err := insLog.ExecContext(e.ctx, int64(m.chat), int64(m.seq), m.logVal); err != nil {
				return err
			}
			for _, p := range m.inbox {
				if _, err := insInbox.ExecContext(e.ctx, int64(p.device), int64(p.cursor), p.val); err != nil {
					return err
				}
			}
			if _, err := upMeta.ExecContext(e.ctx, int64(m.chat), m.metaVal); err != nil {
				return err
			}
		}
		return nil
	})
	return dups, err
}

func (e *sqliteEngine) count() (chatLog, inbox int, err error) {
	if err = e.db.QueryRowContext(e.ctx, "SELECT count(*) FROM chat_log").Scan(&chatLog); err != nil {
		return 0, 0, err
	}
	err = e.db.QueryRowContext(e.ctx, "SELECT count(*) FROM inbox").Scan(&inbox)
	return chatLog, inbox, err
}

func (e *sqliteEngine) close() error {
	for _, s := range []*sql.Stmt{e.selIdem, e.insIdem, e.insLog, e.insInbox, e.upMeta, e.delInbox, e.delOne} {
		if s != nil {
			s.Close()
		}
	}
	// Closing the last connection checkpoints the WAL into the main file.
	return e.db.Close()
}

// compactSQLite rewrites the database without its free pages and empties
// the WAL.
func compactSQLite(dir string) error {
	db, err := sql.Open("sqlite", sqliteDSN(dir))
	if err != nil {
		return err
	}
	for _, q := range []string{"VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"} {
		if _, err := db.Exec(q); err != nil {
			db.Close()
			return err
		}
	}
	return db.Close()
}
