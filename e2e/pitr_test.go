package e2e

import (
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/shard"
)

// TestPointInTimeRestore: a site is backed up, then write A and, in a
// later second, write B reach its database; `aipress backup restore --site
// D --at T` with T between them restores exactly A (the snapshot plus
// the site's shipped database log up to T), in place and as a clone on a
// new domain.
func TestPointInTimeRestore(t *testing.T) {
	p := newPlatform(t)
	p.start()
	const domain = "then.localhost"
	p.createSite(domain, "Then")
	p.client(domain).waitStatus("/", 200, 60*time.Second)
	db := p.rootDB()
	dbName := shard.NamePrefix(platformShard) + shard.SiteID(field(p.siteJSON(domain), "metadata", "uid"))
	snap := p.backup(domain)

	probe := func(database, name string) (string, bool) {
		t.Helper()
		var v string
		err := db.QueryRow("SELECT option_value FROM `"+database+"`.wp_options WHERE option_name = ?", name).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return "", false
		}
		if err != nil {
			t.Fatalf("read %s.%s: %v", database, name, err)
		}
		return v, true
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(strings.ReplaceAll(q, "DB", "`"+dbName+"`"), args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	// Write A after the backup's job finished; B in a later second than
	// T, which is a whole second after A's (the log's commit times are
	// seconds, and At includes its whole second).
	exec("INSERT INTO DB.wp_options (option_name, option_value, autoload) VALUES ('pitr_probe', 'A', 'no')")
	exec("UPDATE DB.wp_options SET option_value = 'A' WHERE option_name = 'blogdescription'")
	afterA := time.Now()
	at := afterA.Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(at.Add(time.Second + 100*time.Millisecond)))
	exec("UPDATE DB.wp_options SET option_value = 'B' WHERE option_name = 'pitr_probe'")
	exec("INSERT INTO DB.wp_options (option_name, option_value, autoload) VALUES ('pitr_probe_b', 'B', 'no')")
	exec("UPDATE DB.wp_options SET option_value = 'B' WHERE option_name = 'blogdescription'")
	when := at.UTC().Format(time.RFC3339)
	t.Logf("snapshot %s; A before %s, B after; restoring to %s", snap.Snapshot, afterA.UTC().Format(time.RFC3339Nano), when)

	// A time in the future is refused, before anything starts.
	if out, err := p.cli("backup", "restore", "--site", domain, "--at", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--in-place"); err == nil ||
		!strings.Contains(out, "in the future") {
		t.Errorf("restore to the future: %v\n%s", err, out)
	}

	// As a clone on a new domain (the original keeps B).
	out, err := p.cli("backup", "restore", "--site", domain, "--at", when, "--to-domain", "clone-then.localhost", "--wait", "-o", "json")
	if err != nil {
		t.Fatalf("point-in-time clone: %v\n%s", err, out)
	}
	cloneDB := shard.NamePrefix(platformShard) + shard.SiteID(field(p.siteJSON("clone-then.localhost"), "metadata", "uid"))
	if v, ok := probe(cloneDB, "pitr_probe"); v != "A" {
		t.Errorf("clone: pitr_probe = %q (%v), want A", v, ok)
	}
	if v, ok := probe(cloneDB, "pitr_probe_b"); ok {
		t.Errorf("clone: pitr_probe_b = %q, written after the time, is there", v)
	}
	if v, _ := probe(cloneDB, "blogdescription"); v != "A" {
		t.Errorf("clone: blogdescription = %q, want A", v)
	}
	if home, _ := probe(cloneDB, "home"); !strings.Contains(home, "clone-then.localhost") {
		t.Errorf("clone: home = %q, want its own domain", home)
	}
	if body := p.client("clone-then.localhost").waitStatus("/", 200, 60*time.Second); !strings.Contains(body, "clone-then.localhost") {
		t.Errorf("clone's front page does not link to its own domain")
	}
	if v, _ := probe(dbName, "pitr_probe"); v != "B" {
		t.Errorf("the original changed by the clone: pitr_probe = %q, want B", v)
	}

	// In place.
	out, err = p.cli("backup", "restore", "--site", domain, "--at", when, "--in-place", "--wait", "-o", "json")
	if err != nil {
		t.Fatalf("point-in-time restore in place: %v\n%s", err, out)
	}
	if j := parseJob(t, out); j.Phase != "Succeeded" {
		t.Fatalf("restore job: %s %s", j.Phase, j.Error)
	}
	if v, ok := probe(dbName, "pitr_probe"); v != "A" {
		t.Errorf("in place: pitr_probe = %q (%v), want A", v, ok)
	}
	if v, ok := probe(dbName, "pitr_probe_b"); ok {
		t.Errorf("in place: pitr_probe_b = %q, written after the time, is there", v)
	}
	if v, _ := probe(dbName, "blogdescription"); v != "A" {
		t.Errorf("in place: blogdescription = %q, want A", v)
	}
	p.cli("site", "purge", domain)
	p.client(domain).waitStatus("/", 200, 60*time.Second)
}
