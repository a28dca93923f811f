package phpfpm_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/phpfpm"
)

// TestSpareClaim: a spare pool, started ahead with one reload, serves a
// new site once claimed — without a reload, as the site's user (the
// spare's renamed), with the site's temporary directory, error log and
// slow log — and keeps serving it through a later reload and a restart of
// the master; removed, its socket and the spare's go at the next reload.
// A spare whose settings differ from the site's is not claimed and is
// left as it was.
func TestSpareClaim(t *testing.T) {
	dir, docroot := siteDir(t)
	if os.Geteuid() != 0 {
		t.Skip("spares need root (their users)")
	}
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	spareUser, siteUser := "aipt_s"+suffix, "aipt_c"+suffix
	if out, err := exec.Command("useradd", "-M", "-U", "-s", "/usr/sbin/nologin", spareUser).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("userdel", "-f", spareUser).Run()
		exec.Command("userdel", "-f", siteUser).Run()
	})
	spareU, err := user.Lookup(spareUser)
	if err != nil {
		t.Fatal(err)
	}

	m := &phpfpm.Master{Dir: filepath.Join(dir, "php"), SpareDir: filepath.Join(dir, "spares"),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	ctx := runMaster(t, m)
	settings := phpfpm.Pool{MaxChildren: 2, IdleTimeout: time.Minute, SlowlogTimeout: time.Second}
	spare := settings
	spare.Name, spare.User, spare.Group = "spare_a", spareUser, spareUser
	reloads := m.Reloads()
	if err := m.WriteSpares([]phpfpm.Pool{spare}); err != nil {
		t.Fatal(err)
	}
	if m.SpareFits("spare_a", spare) {
		t.Error("a spare fits before a reload started it")
	}
	if err := m.ApplyPending(ctx); err != nil {
		t.Fatal(err)
	}
	if n := m.Reloads() - reloads; n != 1 {
		t.Errorf("spares written: %d reloads by ApplyPending, want 1", n)
	}
	reloads = m.Reloads()

	site := settings
	site.Name, site.User, site.Group, site.SiteDir = "site_c", siteUser, siteUser, dir
	renamed := 0
	rename := func(ctx context.Context) error {
		renamed++
		if out, err := exec.CommandContext(ctx, "usermod", "-l", siteUser, spareUser).CombinedOutput(); err != nil {
			return errors.New(string(out))
		}
		if out, err := exec.CommandContext(ctx, "groupmod", "-n", siteUser, spareUser).CombinedOutput(); err != nil {
			return errors.New(string(out))
		}
		return nil
	}

	// Other settings: not claimed, nothing changed.
	other := site
	other.MemoryMB = 77
	if m.SpareFits("spare_a", other) {
		t.Error("a spare fits a pool with another memory limit")
	}
	if err := m.Claim(ctx, "spare_a", other, rename); !errors.Is(err, phpfpm.ErrSpareUnfit) || renamed != 0 {
		t.Fatalf("claim with other settings: %v, %d renames; want ErrSpareUnfit and none", err, renamed)
	}
	if !m.SpareFits("spare_a", site) {
		t.Fatal("the spare does not fit the settings it was made with")
	}

	// The site's files: PHP reads a 0600 file of the site's user and
	// reports where its temporary files and errors go.
	secret := filepath.Join(docroot, "secret.txt")
	os.WriteFile(secret, []byte("for "+spareU.Uid), 0o600)
	uid, _ := strconv.Atoi(spareU.Uid)
	gid, _ := strconv.Atoi(spareU.Gid)
	for _, f := range []string{secret, filepath.Join(dir, "tmp"), filepath.Join(dir, "logs")} {
		if err := os.Chown(f, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(docroot, "index.php"), []byte(`<?php
$t = tempnam(sys_get_temp_dir(), "x");
error_log("logged-by-c");
echo file_get_contents('`+secret+`'), "|", realpath(dirname($t)), "|", realpath(getcwd());
unlink($t);
if (isset($_GET['slow'])) { usleep(1600000); }`), 0o644)

	if err := m.Claim(ctx, "spare_a", site, rename); err != nil {
		t.Fatal(err)
	}
	if n := m.Reloads() - reloads; n != 0 || renamed != 1 {
		t.Errorf("claim: %d reloads, %d renames; want 0 and 1", n, renamed)
	}
	get := serveSite(t, "c.test", docroot, m.Socket("site_c"))
	want := "for " + spareU.Uid + "|" + filepath.Join(dir, "tmp") + "|"
	check := func(when string) {
		t.Helper()
		code, body := get("/")
		if code != 200 || !strings.HasPrefix(body, want) {
			t.Errorf("%s: %d %q, want 200 %q…", when, code, body, want)
		}
	}
	check("claimed")
	if b, _ := os.ReadFile(filepath.Join(dir, "logs", "php-error.log")); !strings.Contains(string(b), "logged-by-c") {
		t.Errorf("the site's error log after a claimed request: %q", b)
	}
	if code, _ := get("/?slow=1"); code != 200 {
		t.Errorf("slow request: %d", code)
	}
	if b, _ := os.ReadFile(m.SlowLog("site_c")); !strings.Contains(string(b), "usleep") {
		t.Errorf("the site's slow log after a slow request: %q", b)
	}
	if _, err := os.Stat(m.PoolFile("spare_a")); !os.IsNotExist(err) {
		t.Errorf("the spare's pool file after the claim: %v", err)
	}
	// The shard ensures the pool as usual afterwards: nothing to do.
	if err := m.UpdatePool(ctx, site); err != nil {
		t.Fatal(err)
	}
	if err := m.EnsurePool(ctx, site); err != nil {
		t.Fatal(err)
	}
	if n := m.Reloads() - reloads; n != 0 {
		t.Errorf("the claimed pool ensured: %d reloads, want 0", n)
	}
	if m.SpareFits("spare_a", site) {
		t.Error("a claimed spare still fits")
	}

	// A reload loads the site's own file, on the spare's socket; the
	// spare's links go.
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	check("after a reload")
	for _, p := range []string{filepath.Join(m.SpareDir, "spare_a"), m.SlowLog("spare_a")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s after the reload: %v", p, err)
		}
	}
	// A killed master comes back with it.
	if err := m.Process().Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get("/"); code == 200 && m.Process().Starts() >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the claimed pool did not serve after the master's restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	check("after a restart")
	if err := m.EnsurePool(ctx, site); err != nil {
		t.Fatal(err)
	}

	// Removed: both sockets go with the next reload.
	if err := m.RemovePool(ctx, "site_c"); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{m.Socket("site_c"), m.Socket("spare_a")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s after the pool's removal and a reload: %v", p, err)
		}
	}
}
