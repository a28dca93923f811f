package auditlog

import (
	"bytes"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/postgres"
	"github.com/aipress/aipress/internal/store/postgres/pgtest"
	"github.com/aipress/aipress/internal/store/sqlite"
)

var pg pgtest.Env

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

func testSigner(t *testing.T, b byte) *Signer {
	t.Helper()
	sg, err := NewSigner(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

// db is a store and a raw handle on its database, to tamper with.
type db struct {
	st  store.Store
	raw *sql.DB
	pg  bool
}

// exec runs q with ? placeholders (rewritten to $n for PostgreSQL).
func (d db) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if d.pg {
		for i := 1; strings.Contains(q, "?"); i++ {
			q = strings.Replace(q, "?", fmt.Sprintf("$%d", i), 1)
		}
	}
	if _, err := d.raw.ExecContext(t.Context(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

var backends = []struct {
	name string
	open func(t *testing.T) db
}{
	{"sqlite", func(t *testing.T) db {
		path := filepath.Join(t.TempDir(), "aipress.db")
		st, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close(); st.Close() })
		return db{st: st, raw: raw}
	}},
	{"postgres", func(t *testing.T) db {
		dsn := pg.Server(t).NewDatabase(t)
		st, err := postgres.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close(); st.Close() })
		return db{st: st, raw: raw, pg: true}
	}},
}

func entry(i int) store.AuditEntry {
	return store.AuditEntry{
		Time: t0.Add(time.Duration(i) * time.Second), Actor: "tok-admin", ActorUser: "usr-1", Org: "acme",
		Channel: store.ChannelCLI, Action: "site.update", Target: fmt.Sprintf("s%d.example.com", i), Outcome: "success",
		Detail: "waf.exclusions +942190:/:s", RequestID: fmt.Sprintf("req-%d", i), SourceIP: "127.0.0.1",
	}
}

// fill appends entries 1..10 with checkpoints at 4 and 8.
func fill(t *testing.T, d db, sg *Signer) {
	t.Helper()
	for i := 1; i <= 10; i++ {
		if err := d.st.AppendAudit(t.Context(), entry(i)); err != nil {
			t.Fatal(err)
		}
		if i == 4 || i == 8 {
			if _, made, err := Checkpoint(t.Context(), d.st, sg, t0.Add(time.Hour)); err != nil || !made {
				t.Fatalf("checkpoint at %d: made %v, %v", i, made, err)
			}
		}
	}
}

// rechain rewrites entries from seq on after edit changed them, with
// correct hashes: an attacker who can edit the database and knows
// store.AuditHash.
func rechain(t *testing.T, d db, from int64, edit func(e *store.AuditEntry)) {
	t.Helper()
	all, err := d.st.ListAudit(t.Context(), store.AuditListOptions{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	prev := ""
	if from > 1 {
		prev = all[from-2].Hash
	}
	for _, e := range all[from-1:] {
		if e.Seq == from {
			edit(&e)
		}
		store.SealAudit(&e, e.Seq-1, prev)
		d.exec(t, `UPDATE audit SET target = ?, prev_hash = ?, hash = ? WHERE seq = ?`, e.Target, e.PrevHash, e.Hash, e.Seq)
		prev = e.Hash
	}
}

func TestVerifyIntact(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			d := b.open(t)
			sg := testSigner(t, 1)
			r, err := Verify(t.Context(), d.st, Options{Keys: []ed25519.PublicKey{sg.PublicKey()}})
			if err != nil || r != (Report{OK: true}) {
				t.Fatalf("empty log: %+v, %v", r, err)
			}
			fill(t, d, sg)
			r, err = Verify(t.Context(), d.st, Options{Keys: []ed25519.PublicKey{testSigner(t, 2).PublicKey(), sg.PublicKey()}, MaxUnsigned: 2})
			if err != nil {
				t.Fatal(err)
			}
			if want := (Report{OK: true, Entries: 10, Checkpoints: 2, CheckpointSeq: 8, Unsigned: 2}); r != want {
				t.Errorf("report %+v, want %+v", r, want)
			}
		})
	}
}

// TestVerifyDetectsTampering edits the database directly, each kind of
// tampering on both stores, and expects Verify to name the first bad seq.
func TestVerifyDetectsTampering(t *testing.T) {
	sg := testSigner(t, 1)
	other := testSigner(t, 9)
	type tc struct {
		name    string
		tamper  func(t *testing.T, d db)
		bad     int64  // 0: the tampering cannot be seen (documented limits)
		problem string // part of Report.Problem
	}
	var cases []tc
	// Editing any one field of a row.
	for _, f := range []struct{ col, val string }{
		{"time", "2030-01-01T00:00:00.000000Z"}, {"actor", "tok-other"}, {"actor_user", "usr-2"}, {"org", "beta"},
		{"channel", "portal"}, {"action", "site.delete"}, {"target", "evil.example.com"}, {"outcome", "forbidden"},
		{"detail", ""}, {"request_id", "req-x"}, {"source_ip", "10.0.0.1"},
	} {
		cases = append(cases, tc{"edit " + f.col, func(t *testing.T, d db) {
			d.exec(t, `UPDATE audit SET `+f.col+` = ? WHERE seq = 3`, f.val)
		}, 3, "entry 3 does not match its hash"})
	}
	cases = append(cases,
		tc{"edit after the last checkpoint", func(t *testing.T, d db) {
			d.exec(t, `UPDATE audit SET outcome = 'forbidden' WHERE seq = 10`)
		}, 10, "entry 10 does not match its hash"},
		tc{"edit hash", func(t *testing.T, d db) {
			d.exec(t, `UPDATE audit SET hash = prev_hash WHERE seq = 6`)
		}, 6, "entry 6 does not match its hash"},
		tc{"edit prev hash", func(t *testing.T, d db) {
			d.exec(t, `UPDATE audit SET prev_hash = hash WHERE seq = 6`)
		}, 6, "entry 6 does not link to entry 5"},
		tc{"delete a middle row", func(t *testing.T, d db) {
			d.exec(t, `DELETE FROM audit WHERE seq = 5`)
		}, 5, "entry 5 is missing"},
		tc{"delete the first row", func(t *testing.T, d db) {
			d.exec(t, `DELETE FROM audit WHERE seq = 1`)
		}, 1, "entry 1 is missing"},
		tc{"delete the tail past a checkpoint", func(t *testing.T, d db) {
			d.exec(t, `DELETE FROM audit WHERE seq >= 7`)
		}, 7, "vouches for entries up to 8, but the log ends at 6"},
		tc{"delete the tail from a checkpoint's entry", func(t *testing.T, d db) {
			d.exec(t, `DELETE FROM audit WHERE seq >= 8`)
		}, 8, "vouches for entries up to 8, but the log ends at 7"},
		tc{"swap two rows' seq", func(t *testing.T, d db) {
			d.exec(t, `UPDATE audit SET seq = -3 WHERE seq = 3`)
			d.exec(t, `UPDATE audit SET seq = 3 WHERE seq = 4`)
			d.exec(t, `UPDATE audit SET seq = 4 WHERE seq = -3`)
		}, 3, "entry 3 does not link to entry 2"},
		tc{"renumber to close a gap", func(t *testing.T, d db) {
			d.exec(t, `DELETE FROM audit WHERE seq = 5`)
			for s := 6; s <= 10; s++ {
				d.exec(t, `UPDATE audit SET seq = ? WHERE seq = ?`, s-1, s)
			}
		}, 5, "entry 5 does not link to entry 4"},
		tc{"recomputed chain", func(t *testing.T, d db) {
			rechain(t, d, 6, func(e *store.AuditEntry) { e.Target = "evil.example.com" })
		}, 5, "the chain at entry 8 differs from its signed checkpoint: entries after 4 were rewritten"},
		tc{"recomputed chain from the first entry", func(t *testing.T, d db) {
			rechain(t, d, 1, func(e *store.AuditEntry) { e.Target = "evil.example.com" })
		}, 1, "the chain at entry 4 differs from its signed checkpoint: entries after 0 were rewritten"},
		tc{"recomputed chain and re-pointed checkpoint", func(t *testing.T, d db) {
			rechain(t, d, 6, func(e *store.AuditEntry) { e.Target = "evil.example.com" })
			d.exec(t, `UPDATE audit_checkpoints SET hash = (SELECT hash FROM audit WHERE seq = 8) WHERE seq = 8`)
		}, 8, "checkpoint at entry 8 has an invalid signature"},
		tc{"recomputed chain and a checkpoint signed with another key", func(t *testing.T, d db) {
			rechain(t, d, 6, func(e *store.AuditEntry) { e.Target = "evil.example.com" })
			d.exec(t, `DELETE FROM audit_checkpoints WHERE seq = 8`)
			var h string
			if err := d.raw.QueryRowContext(t.Context(), `SELECT hash FROM audit WHERE seq = 8`).Scan(&h); err != nil {
				t.Fatal(err)
			}
			if err := d.st.AddAuditCheckpoint(t.Context(), other.Sign(8, h, t0)); err != nil {
				t.Fatal(err)
			}
		}, 8, "not a trusted checkpoint key"},
		tc{"recomputed chain and deleted checkpoints", func(t *testing.T, d db) {
			rechain(t, d, 6, func(e *store.AuditEntry) { e.Target = "evil.example.com" })
			d.exec(t, `DELETE FROM audit_checkpoints WHERE seq = 8`)
		}, 5, "6 entries follow the last checkpoint (at entry 4), more than the 2 allowed"},
		tc{"checkpoint time edited", func(t *testing.T, d db) {
			d.exec(t, `UPDATE audit_checkpoints SET time = '2030-01-01T00:00:00.000000Z' WHERE seq = 4`)
		}, 4, "checkpoint at entry 4 has an invalid signature"},
		// Documented limit: the entries after the last checkpoint can
		// go, all at once, unseen (fewer than MaxUnsigned of them).
		tc{"delete the unsigned tail", func(t *testing.T, d db) {
			d.exec(t, `DELETE FROM audit WHERE seq > 8`)
		}, 0, ""},
	)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					d := b.open(t)
					fill(t, d, sg)
					c.tamper(t, d)
					r, err := Verify(t.Context(), d.st, Options{Keys: []ed25519.PublicKey{sg.PublicKey()}, MaxUnsigned: 2})
					if err != nil {
						t.Fatal(err)
					}
					// Small pages (entries and checkpoints) find the same.
					if paged, err := Verify(t.Context(), d.st, Options{Keys: []ed25519.PublicKey{sg.PublicKey()}, MaxUnsigned: 2, pageSize: 3}); err != nil || paged != r {
						t.Errorf("with pages of 3: %+v, %v; with one page: %+v", paged, err, r)
					}
					if c.bad == 0 {
						if !r.OK {
							t.Errorf("report %+v, want OK (a documented limit)", r)
						}
						return
					}
					if r.OK || r.FirstBadSeq != c.bad || !strings.Contains(r.Problem, c.problem) {
						t.Errorf("report %+v, want first bad seq %d and problem %q", r, c.bad, c.problem)
					}
				})
			}
		})
	}
}

func TestSignerKey(t *testing.T) {
	a, b := testSigner(t, 1), testSigner(t, 1)
	if !a.PublicKey().Equal(b.PublicKey()) || a.KeyID() != b.KeyID() || len(a.KeyID()) != 16 {
		t.Errorf("one KEK, two keys: %x (%s), %x (%s)", a.PublicKey(), a.KeyID(), b.PublicKey(), b.KeyID())
	}
	if c := testSigner(t, 2); c.PublicKey().Equal(a.PublicKey()) || c.KeyID() == a.KeyID() {
		t.Error("two KEKs, one key")
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Error("a 5-byte KEK was accepted")
	}
	cp := a.Sign(7, strings.Repeat("ab", 32), t0.Add(123))
	if !cp.Time.Equal(t0) || !ed25519.Verify(a.PublicKey(), message(cp), cp.Signature) {
		t.Errorf("checkpoint %+v does not verify (or keeps sub-microseconds)", cp)
	}
}

func TestCheckpointIfDue(t *testing.T) {
	d := backends[0].open(t)
	sg := testSigner(t, 1)
	ctx := t.Context()
	if cp, made, err := Checkpoint(ctx, d.st, sg, t0); err != nil || made || cp.Seq != 0 {
		t.Fatalf("checkpoint of an empty log: %+v, %v, %v", cp, made, err)
	}
	for i := 1; i <= 7; i++ {
		if err := d.st.AppendAudit(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
		made, err := CheckpointIfDue(ctx, d.st, sg, 3, t0)
		if err != nil {
			t.Fatal(err)
		}
		if want := i%3 == 0; made != want {
			t.Errorf("after entry %d: made %v, want %v", i, made, want)
		}
	}
	cp, made, err := Checkpoint(ctx, d.st, sg, t0)
	if err != nil || !made || cp.Seq != 7 {
		t.Fatalf("checkpoint on demand: %+v, %v, %v", cp, made, err)
	}
	again, made, err := Checkpoint(ctx, d.st, sg, t0.Add(time.Hour))
	if err != nil || made || again.Seq != 7 || !bytes.Equal(again.Signature, cp.Signature) {
		t.Errorf("checkpoint again: %+v, %v, %v; want the existing one", again, made, err)
	}
	r, err := Verify(ctx, d.st, Options{Keys: []ed25519.PublicKey{sg.PublicKey()}})
	if err != nil || !r.OK || r.Checkpoints != 3 || r.Unsigned != 0 {
		t.Errorf("verify: %+v, %v", r, err)
	}
}
