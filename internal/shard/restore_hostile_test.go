package shard_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// craftSnapshot writes a snapshot of site host into repository repoName
// whose database stream is dump: what a site can put into its own backups
// (the repository authenticates the bytes, not their intent).
func craftSnapshot(t *testing.T, c *cluster, repoName, host, dump string) string {
	t.Helper()
	r, err := c.repos(c.ctx, repoName)
	if err != nil {
		t.Fatal(err)
	}
	st := c.get(host)
	meta, _ := json.Marshal(shard.SnapshotMeta{
		Version: shard.SnapshotMetaVersion, Site: st.Metadata.Name, SiteUID: st.Metadata.UID, Domain: st.Spec.Domain,
		URL: st.Status.URL, Shard: repoName, TablePrefix: "wp_", Spec: st.Spec,
	})
	b, err := r.NewBackup(c.ctx, repo.BackupOptions{Site: st.Metadata.Name, Host: repoName, Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort()
	var emptyTar bytes.Buffer
	if err := tar.NewWriter(&emptyTar).Close(); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"database.sql": dump, "tables.json": "{}", "wp-content.tar": emptyTar.String()} {
		if _, err := b.AddStream(c.ctx, name, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := b.Commit(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return shard.SnapshotRef(repoName, snap.ID)
}

// TestRestoreHostileSnapshot restores, in place, snapshots whose dumps were
// crafted by the site, and verifies one: the dump is loaded sandboxed as a
// user that may touch the staging (or scratch) database only, so writing
// the site's live database or another site's, granting, or running a shell
// command fails the restore, and the live site, the other site and the
// server's accounts are as they were. The site's own dump (a real backup)
// still restores.
func TestRestoreHostileSnapshot(t *testing.T) {
	c := newCluster(t)
	sh := c.start("alpha")
	c.runJobs(sh)
	defer c.deleteAll()
	const host, uid = "h.localhost", "uid-hostile"
	const other, otherUID = "o.localhost", "uid-other"
	c.create(host, uid, "alpha", "Hostile Site", adminFor(t))
	c.create(other, otherUID, "alpha", "Other Site", adminFor(t))
	addContent(t, c, sh, otherUID)
	good := c.backup(host, "alpha")
	n, no := sh.NamesFor(uid), sh.NamesFor(otherUID)
	marker := filepath.Join(c.dir, "pwned-by-restore")

	state := func() string {
		t.Helper()
		var b strings.Builder
		for _, q := range []string{
			"SELECT GROUP_CONCAT(CONCAT(User, '@', Host, '=', JSON_REMOVE(Priv, '$.password_last_changed')) ORDER BY User, Host SEPARATOR '\n') FROM mysql.global_priv", // (convergence sets site users' passwords again)
			"SELECT GROUP_CONCAT(CONCAT_WS(',', Host, Db, User, Select_priv, Insert_priv, Drop_priv, Grant_priv) ORDER BY Host, Db, User SEPARATOR '\n') FROM mysql.db",
			"SELECT GROUP_CONCAT(SCHEMA_NAME ORDER BY SCHEMA_NAME) FROM information_schema.SCHEMATA",
			"SELECT COUNT(*) FROM " + n.DB + ".wp_options WHERE option_name = 'planted'",
			"SELECT COUNT(*) FROM " + no.DB + ".wp_posts",
			"SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '" + n.DB + "'",
		} {
			v, err := sh.DB().QueryString(c.ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			b.WriteString(v + "\n")
		}
		return b.String()
	}
	before := state()
	stage := func(body string) string {
		// A dump that begins like one, so the restore gets to its attack.
		return "DROP TABLE IF EXISTS `wp_options`;\nCREATE TABLE `wp_options` (option_id int);\n" + body
	}
	tests := []struct {
		name, dump, wantErr string
	}{
		{"write the live database", stage("INSERT INTO `" + n.DB + "`.`wp_options` (option_name, option_value, autoload) VALUES ('planted', 'x', 'no');\n"), "denied"},
		{"drop another site's table", stage("DROP TABLE `" + no.DB + "`.`wp_posts`;\n"), "denied"},
		{"rename the live tables away", stage("RENAME TABLE `" + n.DB + "`.`wp_users` TO `wp_users_gone`;\n"), "denied"},
		{"grant", stage("GRANT ALL PRIVILEGES ON *.* TO '" + n.DBUser + "'@'localhost';\n"), "denied"},
		{"shell escape", stage("\\! touch " + marker + "\n"), "Unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref := craftSnapshot(t, c, "alpha", host, tc.dump)
			j := c.job(store.JobRestore, host, "alpha", store.RestoreParams{Snapshot: ref, InPlace: true})
			if d := c.detail(j.Error); j.Phase != store.JobFailed || !strings.Contains(d, tc.wantErr) {
				t.Fatalf("restore: %s %q (logged: %q), want failed with %q", j.Phase, j.Error, d, tc.wantErr)
			}
			_ = c.converge("alpha")
			if after := state(); after != before {
				t.Errorf("the restore changed the server outside its staging database:\nbefore %s\nafter  %s", before, after)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the dump's shell escape ran")
			}
			if s := c.get(host); s.Status.Phase != site.PhaseReady || maintenance(s) {
				t.Errorf("after the failed restore: %s %+v", s.Status.Phase, s.Status.Conditions)
			}
			noStaging(t, c, sh, uid)
			if users, err := sh.DB().LoadUsers(c.ctx); err != nil || len(users) != 0 {
				t.Errorf("load users left: %v %v", users, err)
			}
		})
	}
	// A verify-restore loads into a scratch database: the same limits.
	ref := craftSnapshot(t, c, "alpha", host, tests[1].dump)
	if _, err := sh.VerifyRestore(c.ctx, ref, nil); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Errorf("verify of a hostile snapshot: %v", err)
	}
	noScratch(t, sh)
	if after := state(); after != before {
		t.Errorf("the verify changed the server outside its scratch database:\nbefore %s\nafter  %s", before, after)
	}
	c.routes()
	c.check(other, "/a-post-that-moved/", 200, "Carried across shards.")
	// The site's real backup restores.
	j := c.job(store.JobRestore, host, "alpha", store.RestoreParams{Snapshot: good.Snapshot, InPlace: true})
	if j.Phase != store.JobSucceeded {
		t.Fatalf("restore of the real backup: %s %s", j.Phase, j.Error)
	}
	_ = c.converge("alpha")
	c.routes()
	c.check(host, "/", 200, "Hostile Site")
}
