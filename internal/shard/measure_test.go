package shard_test

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/shard"
)

// measureTestPlugin runs, on ?measureq=K, K statements through $wpdb (the
// site's account, through the shard's pooler) and ends the request.
const measureTestPlugin = `<?php
add_action('init', function () {
	if (!isset($_GET['measureq'])) {
		return;
	}
	global $wpdb;
	$k = max(0, (int) $_GET['measureq']);
	for ($i = 0; $i < $k; $i++) {
		$wpdb->query('SELECT ' . $i);
	}
	nocache_headers();
	header('Content-Type: text/plain');
	echo 'ran ' . $k;
	exit;
});
`

// TestMeasure measures a real site for its usage records (shard.Measure):
// its database bytes are information_schema's figure, its statements
// (counted by MariaDB's USER_STATISTICS for the site's account, which the
// pooler's backends use) grow by exactly the statements a request ran,
// and its files grow by a written file's size (within 1 %).
func TestMeasure(t *testing.T) {
	c := newCluster(t)
	var ahead atomic.Int64 // the shard's clock: moved on to start file walks
	c.tweak = func(cfg *shard.Config) {
		cfg.Clock = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	}
	sh := c.start("alpha")
	const host = "measure.localhost"
	c.create(host, "uid-measure", "alpha", "Measure", adminFor(t))
	t.Cleanup(c.deleteAll)
	n := sh.NamesFor("uid-measure")
	if err := os.WriteFile(filepath.Join(n.Docroot, "wp-content", "mu-plugins", "measuretest.php"), []byte(measureTestPlugin), 0o644); err != nil {
		t.Fatal(err)
	}
	measure := func() shard.SiteMeasure {
		t.Helper()
		m, err := sh.Measure(c.ctx)
		if err != nil {
			t.Fatal(err)
		}
		sm, ok := m.Sites[host]
		if !ok || sm.DBBytes == nil || sm.DBStatements == nil {
			t.Fatalf("measurement %+v: no database figures of %s", m, host)
		}
		return sm
	}
	// files starts walks of the sites' files until done(previous figure,
	// figure) (the previous is -1 at first).
	files := func(done func(prev, cur int64) bool) int64 {
		t.Helper()
		prev := int64(-1)
		deadline := time.Now().Add(time.Minute)
		for {
			ahead.Add(int64(shard.DiskInterval))
			if sm := measure(); sm.FilesBytes != nil {
				if done(prev, *sm.FilesBytes) {
					return *sm.FilesBytes
				}
				prev = *sm.FilesBytes
			}
			if time.Now().After(deadline) {
				t.Fatalf("files of %s: still %d bytes", host, prev)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Database bytes: information_schema's figure.
	is, err := sh.DB().QueryString(c.ctx, "SELECT SUM(IFNULL(DATA_LENGTH,0)+IFNULL(INDEX_LENGTH,0)) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", n.DB)
	if err != nil {
		t.Fatal(err)
	}
	sm := measure()
	if want, _ := strconv.ParseInt(is, 10, 64); *sm.DBBytes != want || want <= 0 {
		t.Errorf("database bytes %d, information_schema says %s", *sm.DBBytes, is)
	}

	// Statements: a request running K more statements than another
	// identical one counts exactly K more. (The first request after the
	// plugin arrived runs more of WordPress's own: a warm-up.)
	run := func(k int) int64 {
		t.Helper()
		before := *measure().DBStatements
		c.check(host, "/?measureq="+strconv.Itoa(k), 200, "ran "+strconv.Itoa(k))
		return *measure().DBStatements - before
	}
	const k = 250
	run(0)
	base, withK, again := run(0), run(k), run(0)
	if withK-base != k || again != base {
		t.Errorf("a request with %d statements more counted %d more (%d, then %d, then %d)", k, withK-base, base, withK, again)
	}
	t.Logf("statements: %d for WordPress's own request, %d with %d more", base, withK, k)

	// Files: a written file's size. Walks run in the background, each
	// started by a measurement a DiskInterval after the last: the figure
	// before is one two walks in a row agree on; the one after, the
	// first that has the file.
	before := files(func(prev, cur int64) bool { return cur == prev })
	data := make([]byte, 3<<20+12345)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(n.Docroot, "wp-content", "uploads-measure.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	after := files(func(_, cur int64) bool { return float64(cur-before) >= float64(len(data))*0.99 })
	if grew := float64(after - before); grew > float64(len(data))*1.01 {
		t.Errorf("files grew by %v bytes (%d → %d) for a file of %d", grew, before, after, len(data))
	}
	t.Logf("files: %d bytes, then %d with a file of %d", before, after, len(data))
}
