package shard_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// externalDB starts a MariaDB server of its own (as a Kubernetes MariaDB
// StatefulSet would be) and returns it with an admin account that logs in
// over TCP, which shards use as their external database server.
func externalDB(t *testing.T, c *cluster) (*mariadb.Server, *mariadb.Remote) {
	t.Helper()
	srv := &mariadb.Server{Dir: filepath.Join(c.dir, "external-db"), Logger: c.log}
	if err := srv.Prepare(c.ctx); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	select {
	case <-srv.Ready():
	case <-time.After(2 * time.Minute):
		t.Fatal("external MariaDB not ready")
	}
	// A password the option file must quote: spaces, '#', quotes, '\'.
	const pw = `adm in#"pw'\x`
	for _, q := range []string{
		"CREATE USER 'admin'@'127.0.0.1' IDENTIFIED BY 'adm in#\"pw\\'\\\\x'",
		"GRANT ALL PRIVILEGES ON *.* TO 'admin'@'127.0.0.1' WITH GRANT OPTION",
	} {
		if err := srv.Exec(c.ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return srv, &mariadb.Remote{Addr: "127.0.0.1:" + strconv.Itoa(srv.Port()), User: "admin", Password: pw}
}

func TestShardOnExternalDatabase(t *testing.T) {
	c := newCluster(t)
	ext, remote := externalDB(t, c)
	sh := c.startWith("alpha", remote)
	c.runJobs(sh)
	defer c.deleteAll()

	// The shard runs no MariaDB: its directory holds only the client
	// option file, root's alone.
	if sh.DB().Process() != nil {
		t.Error("the shard supervises a MariaDB server of its own")
	}
	entries, _ := os.ReadDir(sh.DB().Dir)
	if len(entries) != 1 || entries[0].Name() != "root-client.cnf" {
		t.Errorf("shard's mariadb dir holds %v", entries)
	}
	if st, err := os.Stat(filepath.Join(sh.DB().Dir, "root-client.cnf")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("client option file: %v %v", st, err)
	}

	const host, uid = "x.localhost", "uid-external"
	c.create(host, uid, "alpha", "External DB", adminFor(t))
	n := sh.NamesFor(uid)
	addContent(t, c, sh, uid)
	c.check(host, "/", 200, "External DB")
	c.check(host, "/a-post-that-moved/", 200, "Carried across shards.")

	// The site's database and user live on the external server; the site
	// connects to the shard's pooler, which connects to it over TCP.
	cfg, err := os.ReadFile(filepath.Join(n.Docroot, "wp-config.php"))
	if err != nil {
		t.Fatal(err)
	}
	layout := shard.Layout{Name: "alpha", Dir: filepath.Join(c.dir, "shard-alpha")}
	if want := "define('DB_HOST', 'localhost:" + layout.PoolerSocket() + "');"; !strings.Contains(string(cfg), want) {
		t.Errorf("wp-config.php lacks %s", want)
	}
	if st := sh.Pooler().Stats(); st.QueriesPrimary == 0 || st.Accounts[n.DBUser].Backends == 0 {
		t.Errorf("the site's queries did not go through the pooler: %+v", st)
	}
	extCount := func(q string, args ...any) string {
		t.Helper()
		v, err := ext.QueryString(c.ctx, q, args...)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := extCount("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", n.DB); v != "1" {
		t.Fatalf("database %s on the external server: %s", n.DB, v)
	}
	if v := extCount("SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = '%'", n.DBUser); v != "1" {
		t.Fatalf("user %s@%% on the external server: %s", n.DBUser, v)
	}

	// Freeze and unfreeze (a move's first and last steps) act on the
	// external server's user.
	if err := sh.DB().FreezeWrites(c.ctx, n.DB, n.DBUser); err != nil {
		t.Fatal(err)
	}
	if frozen, err := sh.DB().WritesFrozen(c.ctx, n.DB, n.DBUser); err != nil || !frozen {
		t.Fatalf("frozen = %v, %v", frozen, err)
	}
	if err := sh.DB().UnfreezeWrites(c.ctx, n.DB, n.DBUser); err != nil {
		t.Fatal(err)
	}
	if frozen, err := sh.DB().WritesFrozen(c.ctx, n.DB, n.DBUser); err != nil || frozen {
		t.Fatalf("after unfreeze frozen = %v, %v", frozen, err)
	}

	// Backup (mariadb-dump over TCP) and restore in place (load, swap).
	first := c.backup(host, "alpha")
	rootExec(t, c, sh, n.DB, "DELETE FROM wp_posts WHERE post_name = 'a-post-that-moved'")
	c.check(host, "/a-post-that-moved/", 404, "")
	j := c.job(store.JobRestore, host, "alpha", store.RestoreParams{Snapshot: first.Snapshot, InPlace: true})
	if j.Phase != store.JobSucceeded {
		t.Fatalf("restore: %s: %s", j.Phase, j.Error)
	}
	_ = c.converge("alpha")
	c.routes()
	c.check(host, "/a-post-that-moved/", 200, "Carried across shards.")
	if s := c.get(host); s.Status.Phase != site.PhaseReady {
		t.Fatalf("after the restore: %s %+v", s.Status.Phase, s.Status.Conditions)
	}
	noStaging(t, c, sh, uid)
	// The restore loaded its dump as an ephemeral user of the external
	// server, limited to the staging database, and dropped it.
	if v := extCount("SELECT COUNT(*) FROM mysql.user WHERE User LIKE ?", shard.NamePrefix("alpha")+"ld%"); v != "0" {
		t.Errorf("%s load users left on the external server", v)
	}

	// Delete: the database and the user are gone from the external server.
	c.deleteAll()
	if v := extCount("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?", shard.NamePrefix("alpha")+"%"); v != "0" {
		t.Errorf("%s databases of the shard left on the external server", v)
	}
	if v := extCount("SELECT COUNT(*) FROM mysql.user WHERE User LIKE ?", shard.NamePrefix("alpha")+"%"); v != "0" {
		t.Errorf("%s users of the shard left on the external server", v)
	}
}

// TestShardExternalReplica: with an external server and Replica HOST:PORT
// (a replica of that server reached by address, as on Kubernetes), the
// shard's pooler sends a site's reads to the replica once its watch (with
// the external server's admin account) finds it caught up.
func TestShardExternalReplica(t *testing.T) {
	c := newCluster(t)
	ext, remote := externalDB(t, c)
	user, password, err := ext.Account(c.ctx, mariadb.RoleReplication)
	if err != nil {
		t.Fatal(err)
	}
	rep := &mariadb.Server{Dir: filepath.Join(c.dir, "external-replica"), Logger: c.log,
		ReplicaOfRemote: &mariadb.Source{Addr: remote.Addr, User: user, Password: password}}
	if err := rep.Prepare(c.ctx); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan error, 1)
	go func() { done <- rep.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; rep.Close() })
	select {
	case <-rep.Ready():
	case <-time.After(2 * time.Minute):
		t.Fatal("replica not ready")
	}
	c.tweak = func(cfg *shard.Config) { cfg.Replica = "127.0.0.1:" + strconv.Itoa(rep.Port()) }
	sh := c.startWith("alpha", remote)
	defer c.deleteAll()
	const host = "xr.localhost"
	c.create(host, "uid-xr", "alpha", "External Replica", adminFor(t))
	deadline := time.Now().Add(2 * time.Minute)
	for !sh.ReplicaGate().Usable("") {
		if time.Now().After(deadline) {
			rs, err := rep.ReplicaStatus(c.ctx)
			t.Fatalf("the replica never became usable: %+v %v", rs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := sh.Pooler().Stats().QueriesReplica
	for i := 0; i < 3; i++ {
		c.check(host, "/?i="+strconv.Itoa(i), 200, "External Replica")
	}
	if sh.Pooler().Stats().QueriesReplica == before {
		t.Errorf("no read went to the replica: %+v", sh.Pooler().Stats())
	}
}
