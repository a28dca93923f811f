package shard_test

import (
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/phpfpm"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
)

// TestSparePools: a shard makes a spare PHP pool SpareDelay after a new
// site went Ready, and the next new site takes it — its Unix user is the
// spare's renamed, php-fpm is not reloaded — and serves WordPress, through
// a restart of the shard too. A site whose pool settings differ gets a
// pool of its own (a reload), and the spare, which no longer fits, is
// replaced by one with the new settings. Moved away, the site that took
// a spare leaves nothing behind; once the shard has no sites, neither do
// its spares.
func TestSparePools(t *testing.T) {
	c := newCluster(t)
	delay := 2 * time.Second
	c.tweak = func(cfg *shard.Config) { cfg.Spares = 1; cfg.SpareDelay = delay }
	sh := c.start("s1")
	if os.Geteuid() != 0 {
		t.Skip("spares need root")
	}
	spareRe := regexp.MustCompile(`^` + regexp.QuoteMeta(shard.NamePrefix("s1")) + `s[0-9a-f]{11}$`)
	poolDir := filepath.Join(c.dir, "shard-s1", "php", "pool.d")
	spares := func() []string {
		ents, _ := os.ReadDir(poolDir)
		var out []string
		for _, e := range ents {
			if n := strings.TrimSuffix(e.Name(), ".conf"); spareRe.MatchString(n) {
				out = append(out, n)
			}
		}
		return out
	}
	// waitSpare converges until the shard has one spare other than not,
	// and returns it.
	waitSpare := func(not string) string {
		t.Helper()
		deadline := time.Now().Add(delay + time.Minute)
		for time.Now().Before(deadline) {
			if err := c.converge("s1"); err != nil {
				t.Logf("converge: %v", err)
			}
			if s := spares(); len(s) == 1 && s[0] != not && sh.FPM().SpareFits(s[0], poolOf(t, sh, c.get("a.localhost"))) == (not == "") {
				return s[0]
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("no new spare pool; pools %v", spares())
		return ""
	}

	admin := site.Admin{User: "admin", Email: "a@example.com"}
	a := c.create("a.localhost", "uid-spare-a", "s1", "Site A", admin)
	if p := a.Status.Provision; p == nil || p.Pool != "reload" {
		t.Errorf("first site's provision %+v, want its pool started by a reload", p)
	}
	if s := spares(); len(s) != 0 {
		t.Errorf("spares right after the first site went Ready: %v, want none before %v", s, delay)
	}
	spare := waitSpare("")
	su, err := user.Lookup(spare)
	if err != nil {
		t.Fatalf("the spare's user: %v", err)
	}

	reloads := sh.FPM().Reloads()
	b := c.create("b.localhost", "uid-spare-b", "s1", "Site B", admin)
	if p := b.Status.Provision; p == nil || p.Pool != "spare" {
		t.Errorf("second site's provision %+v, want the spare pool", b.Status.Provision)
	}
	if n := sh.FPM().Reloads() - reloads; n != 0 {
		t.Errorf("the second site's creation reloaded php-fpm %d times, want 0", n)
	}
	nb := sh.NamesFor("uid-spare-b")
	bu, err := user.Lookup(nb.Unix)
	if err != nil || bu.Uid != su.Uid || bu.HomeDir != nb.Dir {
		t.Errorf("site b's user %+v (%v), want the spare's ID %s and home %s", bu, err, su.Uid, nb.Dir)
	}
	if _, err := user.Lookup(spare); err == nil {
		t.Errorf("the spare's user %s is still there", spare)
	}
	if l, err := os.Readlink(nb.Socket); err != nil || l != spare+".sock" {
		t.Errorf("site b's socket path: link to %q (%v), want the spare's socket", l, err)
	}
	check := func(when string) {
		t.Helper()
		for _, host := range []string{"a.localhost", "b.localhost"} {
			code, _, body := c.request("GET", host, "/", nil, nil)
			want := "Site " + strings.ToUpper(host[:1])
			if code != 200 || !strings.Contains(body, want) {
				t.Errorf("%s: GET %s/ = %d, want 200 with %q\n%.300s", when, host, code, want, body)
			}
		}
	}
	check("claimed")
	bSpareSock := filepath.Join(filepath.Dir(nb.Socket), spare+".sock")

	// Restarted, the shard serves b from the pool file the claim wrote.
	c.stop("s1")
	sh = c.start("s1")
	c.routes()
	check("after a restart")

	// Another memory limit: a pool of its own, and the spare is replaced.
	spare = waitSpare("")
	cs := &site.Site{
		Metadata: site.Metadata{Name: "c.localhost", UID: "uid-spare-c", CreatedAt: time.Now().UTC()},
		Spec: site.Spec{Domain: "c.localhost", Title: "Site C", Plan: "basic", Admin: admin, WAF: site.WAF{Mode: site.WAFOff},
			PHP: site.PHP{MemoryLimitMB: 200}},
		Status: site.Status{Phase: site.PhasePending, Shard: "s1"},
	}
	if err := c.st.CreateSite(c.ctx, cs); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5 && c.get("c.localhost").Status.Phase != site.PhaseReady; i++ {
		_ = c.converge("s1")
	}
	if p := c.get("c.localhost").Status.Provision; p == nil || p.Pool != "reload" {
		t.Errorf("a site with other pool settings: provision %+v, want a reload", p)
	}
	deadline := time.Now().Add(delay + time.Minute)
	for {
		_ = c.converge("s1")
		s := spares()
		if len(s) == 1 && s[0] != spare && sh.FPM().SpareFits(s[0], poolOf(t, sh, c.get("c.localhost"))) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spare was not replaced by one for the new settings: %v", s)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := user.Lookup(spare); err == nil {
		t.Errorf("the replaced spare's user %s is still there", spare)
	}
	c.routes()
	check("spare replaced")

	// Moved to another shard, b serves from there; nothing of it stays on
	// s1, and once s1's php-fpm reloaded neither its socket link nor the
	// spare's socket does.
	c.start("s2")
	c.startMove("b.localhost", "move-spare", "s1", "s2")
	if s := c.runMove("b.localhost", site.MoveDone, "s1", "s2"); s.Status.Shard != "s2" || s.Status.Phase != site.PhaseReady {
		t.Fatalf("after the move: %+v", s.Status)
	}
	c.routes()
	check("b moved")
	gone(t, c, sh, "uid-spare-b")
	if err := sh.FPM().Reload(c.ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{nb.Socket, bSpareSock} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s after b moved away and a reload: %v", p, err)
		}
	}
	check("after s1's reload")

	// A shard without sites keeps no spares (nor their users).
	c.deleteAll()
	if err := c.converge(); err != nil {
		t.Fatal(err)
	}
	if s := spares(); len(s) != 0 {
		t.Errorf("spare pools on a shard without sites: %v", s)
	}
	passwd, _ := os.ReadFile("/etc/passwd")
	for _, line := range strings.Split(string(passwd), "\n") {
		if name, _, _ := strings.Cut(line, ":"); spareRe.MatchString(name) && strings.Contains(line, c.dir) {
			t.Errorf("a spare's user on a shard without sites: %s", line)
		}
	}
}

// poolOf is the pool the shard asks for st's.
func poolOf(t *testing.T, sh *shard.Shard, st *site.Site) phpfpm.Pool {
	t.Helper()
	return shard.PoolFor(sh, st)
}
