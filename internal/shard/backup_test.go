package shard_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// storeJobs is shard.Jobs over the control plane's store.
type storeJobs struct{ st store.Store }

func (j storeJobs) ListJobs(ctx context.Context, name string) ([]store.Job, error) {
	l, err := j.st.ListJobs(ctx, store.JobListOptions{Shard: name, Phases: []store.JobPhase{store.JobPending, store.JobRunning}, Limit: 1000})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

func (j storeJobs) UpdateJob(ctx context.Context, id string, fn func(*store.Job)) error {
	_, err := j.st.UpdateJob(ctx, id, func(cur *store.Job) error { fn(cur); return nil })
	return err
}

// runJobs runs sh's job runner for the rest of the test.
func (c *cluster) runJobs(sh *shard.Shard) {
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = sh.RunJobs(ctx, c.src, storeJobs{c.st}) }()
	c.t.Cleanup(func() { cancel(); <-done })
}

// job creates a job and waits until it ends; it returns the finished job.
func (c *cluster) job(kind store.JobKind, siteName, shardName string, params any) *store.Job {
	c.t.Helper()
	raw, _ := json.Marshal(params)
	j := &store.Job{ID: fmt.Sprintf("job-%d", time.Now().UnixNano()), Kind: kind, Site: siteName, Shard: shardName, Params: raw, CreatedAt: time.Now().UTC()}
	if s, err := c.st.GetSite(c.ctx, siteName); err == nil {
		j.SiteUID = s.Metadata.UID
	}
	if err := c.st.CreateJob(c.ctx, j); err != nil {
		c.t.Fatal(err)
	}
	c.shards[shardName].WakeJobs()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		got, err := c.st.GetJob(c.ctx, j.ID)
		if err != nil {
			c.t.Fatal(err)
		}
		if got.Phase == store.JobSucceeded || got.Phase == store.JobFailed {
			c.routes()
			return got
		}
		// The store does not wake the converge loop of these shards.
		_ = c.converge(shardName)
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("job %s (%s of %s) did not end", j.ID, kind, siteName)
	return nil
}

func (c *cluster) backup(siteName, shardName string) store.BackupResult {
	c.t.Helper()
	j := c.job(store.JobBackup, siteName, shardName, store.BackupParams{Reason: "manual"})
	if j.Phase != store.JobSucceeded {
		c.t.Fatalf("backup of %s: %s: %s", siteName, j.Phase, j.Error)
	}
	var res store.BackupResult
	if err := json.Unmarshal(j.Result, &res); err != nil {
		c.t.Fatal(err)
	}
	if j.Progress.Done == 0 || j.Attempts != 1 {
		c.t.Errorf("backup job: progress %+v attempts %d", j.Progress, j.Attempts)
	}
	return res
}

// bigUpload writes a random (incompressible) file into the site's uploads.
func bigUpload(t *testing.T, sh *shard.Shard, uid, name string, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	n := sh.NamesFor(uid)
	p := filepath.Join(n.Docroot, "wp-content", "uploads", "2024", "05", name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Uploads are the site user's (the edge serves nothing else there).
	if u, err := user.Lookup(n.Unix); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

// check fetches path on host and checks status (and a body substring).
func (c *cluster) check(host, path string, code int, want string) {
	c.t.Helper()
	got, _, body := c.request("GET", host, path, nil, nil)
	if got != code || (want != "" && !strings.Contains(body, want)) {
		c.t.Fatalf("GET %s%s = %d (want %d with %q)\n%.300s", host, path, got, code, want, body)
	}
}

func TestBackupAndRestoreInPlace(t *testing.T) {
	c := newCluster(t)
	sh := c.start("alpha")
	c.runJobs(sh)
	defer c.deleteAll()
	const host, uid = "b.localhost", "uid-backup"
	c.create(host, uid, "alpha", "Backed Up", adminFor(t))
	addContent(t, c, sh, uid)
	img := bigUpload(t, sh, uid, "photo.jpg", 4<<20)
	c.check(host, "/a-post-that-moved/", 200, "Carried across shards.")
	c.check(host, "/wp-content/uploads/2024/05/photo.jpg", 200, "")

	first := c.backup(host, "alpha")
	if !strings.HasPrefix(first.Snapshot, "alpha:") || first.TotalBytes < 4<<20 || first.NewBytes < 4<<20 {
		t.Fatalf("first backup: %+v", first)
	}
	second := c.backup(host, "alpha")
	t.Logf("first backup %+v; second %+v", first, second)
	if second.Snapshot == first.Snapshot || second.NewBytes*10 > second.TotalBytes {
		t.Fatalf("second backup of an unchanged site added %d of %d bytes", second.NewBytes, second.TotalBytes)
	}

	// The snapshot verifies: it restores, answers 200 and its tables match.
	res, err := sh.VerifyRestore(c.ctx, first.Snapshot, nil)
	if err != nil || !res.OK || res.Tables < 10 {
		t.Fatalf("verify: %+v, %v", res, err)
	}
	if j := c.job(store.JobVerifyRestore, host, "alpha", store.RestoreParams{Snapshot: first.Snapshot}); j.Phase != store.JobSucceeded {
		t.Fatalf("verify-restore job: %s %s", j.Phase, j.Error)
	}
	noScratch(t, sh)

	// Lose the post and the image, then restore in place.
	n := sh.NamesFor(uid)
	rootExec(t, c, sh, n.DB, "DELETE FROM wp_posts WHERE post_name = 'a-post-that-moved'")
	if err := os.Remove(filepath.Join(n.Docroot, "wp-content", "uploads", "2024", "05", "photo.jpg")); err != nil {
		t.Fatal(err)
	}
	c.check(host, "/a-post-that-moved/", 404, "")
	c.check(host, "/wp-content/uploads/2024/05/photo.jpg", 404, "")
	cookies := c.login(host)

	j := c.job(store.JobRestore, host, "alpha", store.RestoreParams{Snapshot: first.Snapshot, InPlace: true})
	if j.Phase != store.JobSucceeded {
		t.Fatalf("restore: %s: %s", j.Phase, j.Error)
	}
	_ = c.converge("alpha")
	c.routes()
	c.check(host, "/a-post-that-moved/", 200, "Carried across shards.")
	_, _, body := c.request("GET", host, "/wp-content/uploads/2024/05/photo.jpg", nil, nil)
	if !bytes.Equal([]byte(body), img) {
		t.Fatalf("restored image differs (%d bytes)", len(body))
	}
	if s := c.get(host); s.Status.Phase != site.PhaseReady || maintenance(s) {
		t.Fatalf("after the restore: phase %s, conditions %+v", s.Status.Phase, s.Status.Conditions)
	}
	// A login made after the snapshot ends with the restore (its session
	// token is not in the restored database); the admin logs in again.
	if c.dashboard(host, cookies) {
		t.Error("a session newer than the snapshot survived the restore")
	}
	if !c.dashboard(host, c.login(host)) {
		t.Error("the admin cannot log in after the restore")
	}
	noStaging(t, c, sh, uid)

	// A restore that fails before the swap leaves the site as it is: the
	// repository's packs are damaged, so the snapshot cannot be read.
	rootExec(t, c, sh, n.DB, "DELETE FROM wp_posts WHERE post_name = 'a-post-that-moved'")
	corruptPacks(t, filepath.Join(c.dir, "backups", "alpha"))
	j = c.job(store.JobRestore, host, "alpha", store.RestoreParams{Snapshot: first.Snapshot, InPlace: true})
	if j.Phase != store.JobFailed {
		t.Fatalf("restore from a damaged repository: %s", j.Phase)
	}
	t.Logf("failed restore: %s", j.Error)
	if !strings.Contains(j.Error, "failed (details in the log of shard alpha, ref ") || strings.Contains(j.Error, c.dir) {
		t.Errorf("failed restore's error %q: want a short reason and a log reference, no paths", j.Error)
	}
	_ = c.converge("alpha")
	c.routes()
	c.check(host, "/a-post-that-moved/", 404, "")
	c.check(host, "/", 200, "")
	if s := c.get(host); s.Status.Phase != site.PhaseReady || maintenance(s) {
		t.Fatalf("after the failed restore: phase %s, conditions %+v", s.Status.Phase, s.Status.Conditions)
	}
	noStaging(t, c, sh, uid)
	if _, err := sh.VerifyRestore(c.ctx, second.Snapshot, nil); err == nil {
		t.Error("verify of a snapshot in a damaged repository passed")
	}
	noScratch(t, sh)
}

func TestRestoreInterrupted(t *testing.T) {
	c := newCluster(t)
	sh := c.start("alpha")
	defer c.deleteAll()
	const host, uid = "i.localhost", "uid-interrupted"
	c.create(host, uid, "alpha", "Interrupted", adminFor(t))
	addContent(t, c, sh, uid)
	snap, err := sh.BackupSite(c.ctx, c.get(host), "manual", nil)
	if err != nil {
		t.Fatal(err)
	}
	n := sh.NamesFor(uid)
	rootExec(t, c, sh, n.DB, "DELETE FROM wp_posts WHERE post_name = 'a-post-that-moved'")

	crash := errors.New("killed")
	for _, point := range []string{"staged", "swapping"} {
		t.Run(point, func(t *testing.T) {
			rootExec(t, c, sh, n.DB, "DELETE FROM wp_posts WHERE post_name = 'a-post-that-moved'")
			ctx, cancel := context.WithCancel(c.ctx)
			shard.SetCrashAt(sh, func(p string) error {
				if p == point {
					cancel()
					return crash
				}
				return nil
			})
			err := sh.RestoreInPlace(ctx, c.src, c.get(host), snap.Snapshot, nil)
			shard.SetCrashAt(sh, nil)
			if !errors.Is(err, crash) {
				t.Fatalf("restore: %v", err)
			}
			// What a crash leaves: maintenance, and the staged copy.
			if s := c.get(host); !maintenance(s) {
				t.Fatalf("not in maintenance after the crash: %+v", s.Status.Conditions)
			}
			// The next pass finishes or undoes it and brings the site back
			// (the shard's own loop may be the one that does: a pass that
			// finds the site busy skips it).
			for i := 0; i < 50 && maintenance(c.get(host)); i++ {
				if err := c.converge("alpha"); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			c.routes()
			s := c.get(host)
			if maintenance(s) || s.Status.Phase != site.PhaseReady {
				t.Fatalf("after recovery: phase %s, %+v", s.Status.Phase, s.Status.Conditions)
			}
			noStaging(t, c, sh, uid)
			if point == "staged" {
				// Not committed: the original, untouched.
				c.check(host, "/a-post-that-moved/", 404, "")
				c.check(host, "/wp-content/uploads/2024/05/hello.txt", 200, "uploaded before the move")
				// A retry succeeds.
				if err := sh.RestoreInPlace(c.ctx, c.src, c.get(host), snap.Snapshot, nil); err != nil {
					t.Fatal(err)
				}
				c.routes()
			}
			c.check(host, "/a-post-that-moved/", 200, "Carried across shards.")
		})
	}
}

func TestCloneFromSnapshot(t *testing.T) {
	c := newCluster(t)
	sh := c.start("alpha")
	c.runJobs(sh)
	defer c.deleteAll()
	const host, uid = "orig.localhost", "uid-orig"
	c.create(host, uid, "alpha", "Original", adminFor(t))
	addContent(t, c, sh, uid)
	oldURL := "http://" + host + ":" + c.port
	n := sh.NamesFor(uid)
	// A text widget (serialised, with a link to the site) and a post
	// linking to the upload.
	widget := phpSerialize(map[int]map[string]string{2: {"title": "Links", "text": `<a href="` + oldURL + `/about/">About ` + host + `</a>`}})
	rootExec(t, c, sh, n.DB, "UPDATE wp_options SET option_value = '"+strings.ReplaceAll(widget, `'`, `''`)+"' WHERE option_name = 'widget_text'")
	rootExec(t, c, sh, n.DB, `UPDATE wp_posts SET post_content = '<img src="`+oldURL+`/wp-content/uploads/2024/05/hello.txt">' WHERE post_name = 'a-post-that-moved'`)
	snap := c.backup(host, "alpha")

	const clone, cloneUID = "clone.localhost", "uid-clone"
	s := &site.Site{
		Metadata: site.Metadata{Name: clone, UID: cloneUID, CreatedAt: time.Now().UTC()},
		Spec: site.Spec{Domain: clone, Title: "Clone", Plan: "basic", Admin: adminFor(t), WAF: site.WAF{Mode: site.WAFOff},
			Source: &site.Source{Snapshot: snap.Snapshot, FromSite: host, FromURL: oldURL}},
		Status: site.Status{Phase: site.PhasePending, Shard: "alpha"},
	}
	if err := c.st.CreateSite(c.ctx, s); err != nil {
		t.Fatal(err)
	}
	// Convergence restores in the background; it keeps passing meanwhile.
	deadline := time.Now().Add(2 * time.Minute)
	for c.get(clone).Status.Phase != site.PhaseReady {
		if time.Now().After(deadline) {
			t.Fatalf("clone not Ready: %+v", c.get(clone).Status)
		}
		_ = c.converge("alpha")
		time.Sleep(100 * time.Millisecond)
	}
	c.routes()
	newURL := "http://" + clone + ":" + c.port
	nc := sh.NamesFor(cloneUID)
	for _, opt := range []string{"siteurl", "home"} {
		if v, _ := sh.DB().QueryString(c.ctx, "SELECT option_value FROM `"+nc.DB+"`.wp_options WHERE option_name = ?", opt); v != newURL {
			t.Errorf("clone's %s = %q, want %q", opt, v, newURL)
		}
	}
	w, _ := sh.DB().QueryString(c.ctx, "SELECT option_value FROM `"+nc.DB+"`.wp_options WHERE option_name = 'widget_text'")
	if want := phpSerialize(map[int]map[string]string{2: {"title": "Links", "text": `<a href="` + newURL + `/about/">About ` + host + `</a>`}}); w != want {
		t.Errorf("clone's widget:\n got %s\nwant %s", w, want)
	}
	c.check(clone, "/a-post-that-moved/", 200, newURL+"/wp-content/uploads/2024/05/hello.txt")
	c.check(clone, "/wp-content/uploads/2024/05/hello.txt", 200, "uploaded before the move")
	_, _, body := c.request("GET", clone, "/", nil, nil)
	if strings.Contains(body, oldURL) {
		t.Errorf("the clone's home page links to the original:\n%.500s", body)
	}
	// The clone's admin logs in with its own spec's password.
	if !c.dashboard(clone, c.login(clone)) {
		t.Error("the clone's admin cannot reach the dashboard")
	}
	// The original is unchanged.
	if v, _ := sh.DB().QueryString(c.ctx, "SELECT option_value FROM `"+n.DB+"`.wp_options WHERE option_name = 'home'"); v != oldURL {
		t.Errorf("original's home = %q", v)
	}
	c.check(host, "/a-post-that-moved/", 200, oldURL+"/wp-content/uploads/")
}

// phpSerialize serialises a widget option as PHP does (ordered keys).
func phpSerialize(m map[int]map[string]string) string {
	str := func(s string) string { return fmt.Sprintf("s:%d:\"%s\";", len(s), s) }
	var b strings.Builder
	fmt.Fprintf(&b, "a:%d:{", len(m))
	for k := 0; k < 10; k++ {
		inner, ok := m[k]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "i:%d;a:%d:{", k, len(inner))
		for _, ik := range []string{"title", "text"} {
			if v, ok := inner[ik]; ok {
				b.WriteString(str(ik) + str(v))
			}
		}
		b.WriteString("}")
	}
	b.WriteString("}")
	return b.String()
}

func maintenance(s *site.Site) bool {
	c := s.Status.Condition(site.CondMaintenance)
	return c != nil && c.Status == "True"
}

// noStaging checks that no restore leftovers remain for site uid.
func noStaging(t *testing.T, c *cluster, sh *shard.Shard, uid string) {
	t.Helper()
	n := sh.NamesFor(uid)
	for _, db := range []string{n.DB + "_rs", n.DB + "_ro"} {
		if ok, _ := sh.DB().DatabaseExists(c.ctx, db); ok {
			t.Errorf("staging database %s remains", db)
		}
	}
	for _, p := range []string{n.Docroot + ".restore", n.Docroot + ".old", filepath.Join(n.Dir, "restore.json")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s remains", p)
		}
	}
}

// noScratch checks that no verify scratch site remains.
func noScratch(t *testing.T, sh *shard.Shard) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Dir(sh.NamesFor("x").Dir))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "v") {
			t.Errorf("scratch site %s remains", e.Name())
		}
	}
}

// corruptPacks flips a byte in the middle of every pack of a repository.
func corruptPacks(t *testing.T, dir string) {
	t.Helper()
	n := 0
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.Contains(p, "/data/") || strings.HasSuffix(p, ".attrs") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) < 100 {
			return nil
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		n++
		return nil
	})
	if n == 0 {
		t.Fatalf("no packs under %s", dir)
	}
}
