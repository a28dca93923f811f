package shard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/sitefw"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates Unix users")
	}
}

func owner(t *testing.T, path string) (int, int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// Site users get IDs from the range; a user created again for files that
// exist (a pod's fresh /etc/passwd) takes the IDs they carry; one whose
// files carry IDs outside the range (made before it) gets new IDs and its
// files are re-owned — none lost, links never followed, other owners'
// files untouched.
func TestSiteUserIDs(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	name := "wt" + hex.EncodeToString(b)
	home := filepath.Join(t.TempDir(), "sites", "x")
	ids := sitefw.DefaultSiteIDs
	t.Cleanup(func() { _ = removeUnixUser(context.Background(), name, home) })

	uid, gid, err := ensureUnixUser(ctx, name, home, ids)
	if err != nil {
		t.Fatal(err)
	}
	if !ids.Contains(uid) || !ids.Contains(gid) {
		t.Fatalf("new site user %d:%d, want IDs in %s", uid, gid, ids)
	}
	// The site's files, as the shard makes them.
	upload := filepath.Join(home, "htdocs", "wp-content", "uploads", "2024", "a.jpg")
	config := filepath.Join(home, "htdocs", "wp-config.php")
	rootFile := filepath.Join(home, "secrets.json")
	outside := filepath.Join(t.TempDir(), "outside")
	link := filepath.Join(home, "htdocs", "wp-content", "uploads", "link")
	mk := func(uid, gid int) {
		for _, d := range []string{filepath.Dir(upload), filepath.Join(home, "tmp")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []string{upload, config, rootFile, outside} {
			if err := os.WriteFile(f, []byte("x"), 0o640); err != nil {
				t.Fatal(err)
			}
		}
		_ = os.Remove(link)
		if err := os.Symlink(outside, link); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{home, filepath.Join(home, "htdocs"), config} {
			if err := os.Lchown(p, 0, gid); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range []string{filepath.Join(home, "tmp"), filepath.Join(home, "htdocs", "wp-content", "uploads"),
			filepath.Dir(upload), upload, outside, link} {
			if err := os.Lchown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(filepath.Join(home, "tmp"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	mk(uid, gid)

	// A pod restarts: /etc/passwd is new, the volume is not.
	if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
		t.Fatalf("userdel: %v: %s", err, out)
	}
	_ = exec.Command("groupdel", name).Run()
	uid2, gid2, err := ensureUnixUser(ctx, name, home, ids)
	if err != nil {
		t.Fatal(err)
	}
	if uid2 != uid || gid2 != gid {
		t.Errorf("recreated user %d:%d, want the IDs its files carry, %d:%d", uid2, gid2, uid, gid)
	}

	// A user made before the range: its files carry other IDs.
	const oldUID, oldGID = 4_100_000_321, 4_100_000_654
	if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
		t.Fatalf("userdel: %v: %s", err, out)
	}
	_ = exec.Command("groupdel", name).Run()
	mk(oldUID, oldGID)
	uid3, gid3, err := ensureUnixUser(ctx, name, home, ids)
	if err != nil {
		t.Fatal(err)
	}
	if !ids.Contains(uid3) || !ids.Contains(gid3) {
		t.Fatalf("user %d:%d, want IDs in %s", uid3, gid3, ids)
	}
	checks := []struct {
		path     string
		uid, gid int
	}{
		{upload, uid3, gid3},
		{filepath.Dir(upload), uid3, gid3},
		{filepath.Join(home, "tmp"), uid3, gid3},
		{link, uid3, gid3},        // the link itself
		{outside, oldUID, oldGID}, // never its target
		{config, 0, gid3},         // root's file with the site's group
		{home, 0, gid3},           // the site directory
		{rootFile, 0, 0},          // root's alone
		{filepath.Join(home, "htdocs"), 0, gid3},
	}
	for _, c := range checks {
		if u, g := owner(t, c.path); u != c.uid || g != c.gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", c.path, u, g, c.uid, c.gid)
		}
	}
	if b, err := os.ReadFile(upload); err != nil || string(b) != "x" {
		t.Errorf("upload after re-owning: %q, %v", b, err)
	}
	// Nothing moves any more.
	if u, g, err := ensureUnixUser(ctx, name, home, ids); err != nil || u != uid3 || g != gid3 {
		t.Errorf("again: %d:%d, %v", u, g, err)
	}
}

// recorder is a SiteUserFilter that remembers what it was told.
type recorder struct {
	mu   sync.Mutex
	uids []uint32
	log  []string
}

func (r *recorder) SetUIDs(u ...uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.uids = slices.Clone(u)
	slices.Sort(r.uids)
	r.log = append(r.log, "set")
	return nil
}

func (r *recorder) AddUIDs(u ...uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range u {
		if !slices.Contains(r.uids, x) {
			r.uids = append(r.uids, x)
		}
	}
	slices.Sort(r.uids)
	r.log = append(r.log, "add")
	return nil
}

func (r *recorder) RemoveUIDs(u ...uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.uids = slices.DeleteFunc(r.uids, func(x uint32) bool { return slices.Contains(u, x) })
	r.log = append(r.log, "remove")
	return nil
}

// The shard tells its filter about every site user: the ones in
// /etc/passwd at start (also those outside the range), each new one as it
// is created, each removed one after removal.
func TestSiteUserFilter(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	rec := &recorder{}
	s := New(Config{Name: "fwtest-" + strconv.Itoa(os.Getpid()), Dir: t.TempDir(), SiteUsers: rec})
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	a, c := s.namesForID(hex.EncodeToString(b)), s.namesForID(hex.EncodeToString(b[:5])+"ff")
	t.Cleanup(func() {
		_ = removeUnixUser(context.Background(), a.Unix, a.Dir)
		_ = removeUnixUser(context.Background(), c.Unix, c.Dir)
	})
	// An older user, outside the range, already there.
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", c.Dir,
		"--shell", "/usr/sbin/nologin", "--user-group", c.Unix).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	cuid, _ := lookupIDs(c.Unix)
	if err := s.syncSiteUsers(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.uids, []uint32{uint32(cuid)}) {
		t.Errorf("after sync: %v, want [%d]", rec.uids, cuid)
	}
	uid, _, err := s.ensureSiteUser(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rec.uids, uint32(uid)) {
		t.Errorf("new user %d not added: %v", uid, rec.uids)
	}
	if err := s.removeSiteUser(ctx, a); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(rec.uids, uint32(uid)) || lookupUID(a.Unix) >= 0 {
		t.Errorf("removed user %d still there: %v", uid, rec.uids)
	}
	if err := s.removeSiteUser(ctx, a); err != nil {
		t.Errorf("second removal: %v", err)
	}
}

func TestPasswdUsersUnder(t *testing.T) {
	const passwd = `root:x:0:0:root:/root:/bin/bash
wp_abc:x:1001:1001::/tmp/aipress-bench-1/data/shards/local/sites/abc:/usr/sbin/nologin
wp_def:x:1002:1002::/tmp/aipress-bench-1/data/shards/local/sites/def:/usr/sbin/nologin
wp_other:x:1003:1003::/tmp/aipress-bench-1/database/x:/usr/sbin/nologin
wp_same:x:1004:1004::/tmp/aipress-bench-1/data:/usr/sbin/nologin
short:x:1005
`
	got, err := passwdUsersUnder(strings.NewReader(passwd), "/tmp/aipress-bench-1/data/")
	if err != nil {
		t.Fatal(err)
	}
	want := []passwdUser{{"wp_abc", "/tmp/aipress-bench-1/data/shards/local/sites/abc"}, {"wp_def", "/tmp/aipress-bench-1/data/shards/local/sites/def"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// RemoveUsersUnder removes the users whose home is below the directory
// (also one with a process running as it, and one whose home is already
// gone) and leaves the others alone.
func TestRemoveUsersUnder(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	dir := t.TempDir()
	other := t.TempDir()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := "wr" + hex.EncodeToString(b)
	type u struct{ name, home string }
	under := []u{{prefix + "a", filepath.Join(dir, "shards", "local", "sites", "a")}, {prefix + "b", filepath.Join(dir, "shards", "s2", "sites", "b")}}
	outside := u{prefix + "c", filepath.Join(other, "sites", "c")}
	for _, x := range append(under, outside) {
		t.Cleanup(func() { _ = removeUnixUser(context.Background(), x.name, x.home) })
		if _, _, err := ensureUnixUser(ctx, x.name, x.home, sitefw.DefaultSiteIDs); err != nil {
			t.Fatal(err)
		}
	}
	// A process of the first user (userdel refuses a user with one).
	uid, gid := lookupIDs(under[0].name)
	sleep := exec.Command("sleep", "60")
	sleep.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleep.Wait() }()
	t.Cleanup(func() { _ = sleep.Process.Kill() })
	// The second one's home is gone, as after a test's or a benchmark's run.
	if err := os.RemoveAll(filepath.Dir(filepath.Dir(under[1].home))); err != nil {
		t.Fatal(err)
	}

	n, err := RemoveUsersUnder(ctx, dir)
	if err != nil || n != 2 {
		t.Fatalf("RemoveUsersUnder = %d, %v; want 2, nil", n, err)
	}
	for _, x := range under {
		if lookupUID(x.name) >= 0 {
			t.Errorf("user %s (home %s) is still there", x.name, x.home)
		}
	}
	if lookupUID(outside.name) < 0 {
		t.Errorf("user %s, home outside the directory, was removed", outside.name)
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Error("the removed user's process still runs")
	}
	if n, err := RemoveUsersUnder(ctx, dir); err != nil || n != 0 {
		t.Errorf("again: %d, %v; want 0, nil", n, err)
	}
}
