package shard_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// nextSecond waits until the clock's second changes (the binary log's
// commit times have a second's resolution) and returns the time.
func nextSecond() time.Time {
	start := time.Now().Unix()
	for time.Now().Unix() == start {
		time.Sleep(20 * time.Millisecond)
	}
	return time.Now()
}

// waitShipping waits until the shard ships its binary log.
func waitShipping(t *testing.T, c *cluster, sh *shard.Shard) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := sh.FlushLog(c.ctx)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shard does not ship its binary log: %v", err)
		}
		_ = c.converge("alpha")
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRestoreToTime: backup, write A at t1, write B at t2; a restore to a
// time between them gives exactly A — in place (replayed into the staging
// database before the swap) and as a clone (replayed into the clone's own
// database); a time the log does not reach fails clearly.
func TestRestoreToTime(t *testing.T) {
	c := newCluster(t)
	sh := c.start("alpha")
	c.runJobs(sh)
	defer c.deleteAll()
	const host, uid = "pitr.localhost", "uid-pitr"
	c.create(host, uid, "alpha", "Point in time", adminFor(t))
	waitShipping(t, c, sh)
	snap := c.backup(host, "alpha")
	n := sh.NamesFor(uid)
	value := func(db, name string) string {
		v, _ := sh.DB().QueryString(c.ctx, "SELECT option_value FROM `"+db+"`.wp_options WHERE option_name = ?", name)
		return v
	}

	nextSecond()
	rootExec(t, c, sh, n.DB, "INSERT INTO wp_options (option_name, option_value, autoload) VALUES ('pitr_a', 'A 😀', 'no')")
	rootExec(t, c, sh, n.DB, "UPDATE wp_options SET option_value = 'Title at A' WHERE option_name = 'blogname'")
	at := nextSecond()
	nextSecond()
	rootExec(t, c, sh, n.DB, "INSERT INTO wp_options (option_name, option_value, autoload) VALUES ('pitr_b', 'B', 'no')")
	rootExec(t, c, sh, n.DB, "UPDATE wp_options SET option_value = 'Title at B' WHERE option_name = 'blogname'")

	// Beyond what the log holds: a clear failure, the site untouched.
	later := time.Now().Add(time.Hour)
	j := c.job(store.JobRestore, host, "alpha", store.RestoreParams{Snapshot: snap.Snapshot, InPlace: true, At: &later})
	if j.Phase != store.JobFailed || !strings.Contains(j.Error, "does not reach") {
		t.Fatalf("restore beyond the log: %s: %s", j.Phase, j.Error)
	}
	if value(n.DB, "pitr_b") != "B" {
		t.Fatal("a failed restore changed the site")
	}

	// In place.
	j = c.job(store.JobRestore, host, "alpha", store.RestoreParams{Snapshot: snap.Snapshot, InPlace: true, At: &at})
	if j.Phase != store.JobSucceeded {
		t.Fatalf("restore to %s: %s: %s", at, j.Phase, j.Error)
	}
	if got := value(n.DB, "pitr_a"); got != "A 😀" {
		t.Errorf("after the restore to %s: pitr_a = %q", at, got)
	}
	if got := value(n.DB, "pitr_b"); got != "" {
		t.Errorf("after the restore to %s: pitr_b = %q (written after)", at, got)
	}
	if got := value(n.DB, "blogname"); got != "Title at A" {
		t.Errorf("after the restore to %s: blogname = %q", at, got)
	}
	_ = c.converge("alpha")
	c.routes()
	c.check(host, "/", 200, "Title at A")
	noStaging(t, c, sh, uid)
	if users, err := sh.DB().LoadUsers(c.ctx); err != nil || len(users) != 0 {
		t.Errorf("replay users left: %v %v", users, err)
	}

	// As a clone, from the same snapshot and log (the in-place restore's
	// swap comes after the time, so it is not crossed).
	const clone, cloneUID = "pitr-clone.localhost", "uid-pitr-clone"
	oldURL := "http://" + host + ":" + c.port
	s := &site.Site{
		Metadata: site.Metadata{Name: clone, UID: cloneUID, CreatedAt: time.Now().UTC()},
		Spec: site.Spec{Domain: clone, Title: "Clone", Plan: "basic", Admin: adminFor(t), WAF: site.WAF{Mode: site.WAFOff},
			Source: &site.Source{Snapshot: snap.Snapshot, FromSite: host, FromURL: oldURL, At: &at}},
		Status: site.Status{Phase: site.PhasePending, Shard: "alpha"},
	}
	if err := c.st.CreateSite(c.ctx, s); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for c.get(clone).Status.Phase != site.PhaseReady {
		if time.Now().After(deadline) {
			t.Fatalf("clone not Ready: %+v", c.get(clone).Status)
		}
		_ = c.converge("alpha")
		time.Sleep(100 * time.Millisecond)
	}
	nc := sh.NamesFor(cloneUID)
	if got := value(nc.DB, "pitr_a"); got != "A 😀" {
		t.Errorf("clone at %s: pitr_a = %q", at, got)
	}
	if got := value(nc.DB, "pitr_b"); got != "" {
		t.Errorf("clone at %s: pitr_b = %q (written after)", at, got)
	}
	if got := value(nc.DB, "home"); got != "http://"+clone+":"+c.port {
		t.Errorf("clone's home = %q", got)
	}

	// As a clone on another shard, which knows the log only from alpha's
	// repository: alpha ships and marks its coverage first.
	beta := c.start("beta")
	if _, err := sh.FlushLog(c.ctx, c.get(host)); err != nil {
		t.Fatal(err)
	}
	const far, farUID = "pitr-far.localhost", "uid-pitr-far"
	s2 := &site.Site{
		Metadata: site.Metadata{Name: far, UID: farUID, CreatedAt: time.Now().UTC()},
		Spec: site.Spec{Domain: far, Title: "Far clone", Plan: "basic", Admin: adminFor(t), WAF: site.WAF{Mode: site.WAFOff},
			Source: &site.Source{Snapshot: snap.Snapshot, FromSite: host, FromURL: oldURL, At: &at}},
		Status: site.Status{Phase: site.PhasePending, Shard: "beta"},
	}
	if err := c.st.CreateSite(c.ctx, s2); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(2 * time.Minute)
	for c.get(far).Status.Phase != site.PhaseReady {
		if time.Now().After(deadline) {
			t.Fatalf("clone on beta not Ready: %+v", c.get(far).Status)
		}
		_ = c.converge("beta")
		time.Sleep(100 * time.Millisecond)
	}
	fn := beta.NamesFor(farUID)
	farValue := func(name string) string {
		v, _ := beta.DB().QueryString(c.ctx, "SELECT option_value FROM `"+fn.DB+"`.wp_options WHERE option_name = ?", name)
		return v
	}
	if got, gotB := farValue("pitr_a"), farValue("pitr_b"); got != "A 😀" || gotB != "" {
		t.Errorf("clone on beta at %s: pitr_a = %q, pitr_b = %q", at, got, gotB)
	}
}
