package shard_test

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
)

// Two shards run side by side on one host, each with its own directory,
// MariaDB server and php-fpm master: both serve their sites, and orphan
// collection on one leaves the other's resources alone.
func TestTwoShardsOnOneHost(t *testing.T) {
	c := newCluster(t)
	a := c.start(shard.LocalName)
	b := c.start("beta")
	defer c.deleteAll()

	if a.DB().Socket() == b.DB().Socket() || a.DB().Port() == b.DB().Port() {
		t.Fatalf("shards share a MariaDB socket or port: %s:%d / %s:%d", a.DB().Socket(), a.DB().Port(), b.DB().Socket(), b.DB().Port())
	}
	if a.FPM().Socket("x") == b.FPM().Socket("x") {
		t.Fatal("shards share php-fpm sockets")
	}
	admin := site.Admin{User: "admin", Email: "a@example.com"}
	c.create("a.localhost", "uid-a", shard.LocalName, "Site On Local", admin)
	c.create("b.localhost", "uid-b", "beta", "Site On Beta", admin)

	na, nb := a.NamesFor("uid-a"), b.NamesFor("uid-b")
	if na.Unix != "wp_"+shard.SiteID("uid-a") {
		t.Errorf("local shard's user = %q, want the wp_ prefix", na.Unix)
	}
	if p := shard.NamePrefix("beta"); !strings.HasPrefix(nb.Unix, p) || p == "wp_" || len(nb.Unix) > 32 {
		t.Errorf("beta's user = %q (prefix %q)", nb.Unix, p)
	}
	// The same site on both shards (as during a move) has distinct users.
	if a.NamesFor("uid-a").Unix == b.NamesFor("uid-a").Unix {
		t.Error("one site has the same Unix user on two shards")
	}

	serves := func() {
		t.Helper()
		for host, title := range map[string]string{"a.localhost": "Site On Local", "b.localhost": "Site On Beta"} {
			code, _, body := c.request("GET", host, "/", nil, nil)
			if code != 200 || !strings.Contains(body, title) {
				t.Fatalf("GET %s/ = %d\n%.300s", host, code, body)
			}
		}
	}
	serves()

	// Orphans planted on the local shard: a database of its own naming
	// and a site directory. Its collection must take them and nothing of
	// beta's.
	orphan := "wp_0123456789ab"
	if err := a.DB().EnsureDatabase(c.ctx, orphan, orphan, "pw", 10); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(c.dir, "shard-local", "sites", "0123456789ab"), 0o750); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := c.converge(); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _ := a.DB().DatabaseExists(c.ctx, orphan); ok {
		t.Error("orphan database on the local shard not collected")
	}
	if _, err := os.Stat(filepath.Join(c.dir, "shard-local", "sites", "0123456789ab")); !os.IsNotExist(err) {
		t.Errorf("orphan directory not collected: %v", err)
	}
	for _, chk := range []struct {
		sh *shard.Shard
		n  shard.Names
	}{{a, na}, {b, nb}} {
		if ok, _ := chk.sh.DB().DatabaseExists(c.ctx, chk.n.DB); !ok {
			t.Errorf("database %s gone", chk.n.DB)
		}
		if _, err := os.Stat(chk.sh.FPM().PoolFile(chk.n.Pool)); err != nil {
			t.Errorf("pool %s gone: %v", chk.n.Pool, err)
		}
		if _, err := os.Stat(chk.n.Docroot); err != nil {
			t.Errorf("docroot gone: %v", err)
		}
		if os.Geteuid() == 0 {
			if _, err := user.Lookup(chk.n.Unix); err != nil {
				t.Errorf("unix user %s gone: %v", chk.n.Unix, err)
			}
		}
	}
	serves()
}
