package shard_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
)

// poolTestPlugin is a must-use plugin the tests put into a site: on
// ?pooltest=K it runs, through $wpdb, SQL_CALC_FOUND_ROWS with FOUND_ROWS()
// over K rows of its own, a committed and a rolled-back transaction, and
// reports what it saw; on ?pooltest_sleep it runs SELECT SLEEP(1) (nothing
// that pins a pooled connection); on ?pooltest_direct=SOCKET it tries to connect to
// that socket with the site's own credentials; and it schedules a WP-Cron
// event that records that it ran.
const poolTestPlugin = `<?php
add_action('pooltest_cron', function () { update_option('pooltest_cron_ran', (string) time()); });
add_action('init', function () {
	if (!get_option('pooltest_cron_ran') && !wp_next_scheduled('pooltest_cron')) {
		wp_schedule_single_event(time() - 60, 'pooltest_cron');
	}
	if (isset($_GET['pooltest_direct'])) {
		mysqli_report(MYSQLI_REPORT_OFF);
		$m = @new mysqli('localhost', DB_USER, DB_PASSWORD, DB_NAME, 0, $_GET['pooltest_direct']);
		nocache_headers();
		header('Content-Type: text/plain');
		echo $m->connect_errno ? 'refused ' . $m->connect_errno . ' ' . $m->connect_error : 'connected';
		exit;
	}
	if (isset($_GET['pooltest_sleep'])) {
		global $wpdb;
		$v = $wpdb->get_var('SELECT SLEEP(1) AS pooltest_sleep');
		nocache_headers();
		header('Content-Type: text/plain');
		echo $v === null ? 'error ' . $wpdb->last_error : 'slept';
		exit;
	}
	if (!isset($_GET['pooltest'])) {
		return;
	}
	global $wpdb;
	$k = max(1, (int) $_GET['pooltest']);
	$tok = preg_replace('/[^a-z0-9]/', '', $_GET['tok']);
	$t = $wpdb->prefix . 'pooltest';
	$count = function ($v) use ($wpdb, $t, $tok) {
		return (int) $wpdb->get_var($wpdb->prepare("SELECT COUNT(*) FROM $t WHERE tok = %s AND v = %s", $tok, $v));
	};
	$out = array();
	$wpdb->query("CREATE TABLE IF NOT EXISTS $t (id INT AUTO_INCREMENT PRIMARY KEY, tok VARCHAR(40), v VARCHAR(20), KEY (tok)) ENGINE=InnoDB");
	for ($i = 0; $i < $k; $i++) {
		$wpdb->insert($t, array('tok' => $tok, 'v' => 'calc'));
	}
	$rows = $wpdb->get_col($wpdb->prepare("SELECT SQL_CALC_FOUND_ROWS id FROM $t WHERE tok = %s AND v = 'calc' LIMIT 1", $tok));
	usleep(20000);
	$out['limited'] = count($rows);
	$out['found'] = (int) $wpdb->get_var('SELECT FOUND_ROWS()');
	$wpdb->query('START TRANSACTION');
	$wpdb->insert($t, array('tok' => $tok, 'v' => 'committed'));
	usleep(20000);
	$wpdb->query('COMMIT');
	$wpdb->query('START TRANSACTION');
	$wpdb->insert($t, array('tok' => $tok, 'v' => 'rolledback'));
	$out['in_tx'] = $count('rolledback');
	usleep(20000);
	$wpdb->query('ROLLBACK');
	$out['after_rollback'] = $count('rolledback');
	$out['committed'] = $count('committed');
	$out['error'] = $wpdb->last_error;
	nocache_headers();
	header('Content-Type: application/json');
	echo wp_json_encode($out);
	exit;
});
`

// installPoolTestPlugin writes poolTestPlugin into the site's mu-plugins.
func installPoolTestPlugin(t *testing.T, n shard.Names) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.Docroot, "wp-content", "mu-plugins", "pooltest.php"), []byte(poolTestPlugin), 0o644); err != nil {
		t.Fatal(err)
	}
}

type poolTestResult struct {
	Limited       int    `json:"limited"`
	Found         int    `json:"found"`
	InTx          int    `json:"in_tx"`
	AfterRollback int    `json:"after_rollback"`
	Committed     int    `json:"committed"`
	Error         string `json:"error"`
}

// poolTest runs the plugin's checks once with k rows.
func (c *cluster) poolTest(host string, k int, tok string) (poolTestResult, error) {
	req, _ := http.NewRequest("GET", c.srv.URL+"/?pooltest="+strconv.Itoa(k)+"&tok="+tok, nil)
	req.Host = host + ":" + c.port
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return poolTestResult{}, err
	}
	defer resp.Body.Close()
	var r poolTestResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != 200 {
		return r, fmt.Errorf("pooltest = %d: %v", resp.StatusCode, err)
	}
	return r, nil
}

// check reports what differs from the right answers for k rows.
func (r poolTestResult) check(k int) error {
	if r.Limited != 1 || r.Found != k || r.InTx != 1 || r.AfterRollback != 0 || r.Committed != 1 || r.Error != "" {
		return fmt.Errorf("with %d rows: %+v; want limited 1, found %d, in_tx 1, after_rollback 0, committed 1, no error", k, r, k)
	}
	return nil
}

var defineRE = regexp.MustCompile(`define\(\s*'(DB_[A-Z]+)',\s*'([^']*)'\s*\)`)

// wpConfigDB returns the DB_* constants of the site's wp-config.php.
func wpConfigDB(t *testing.T, n shard.Names) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.Docroot, "wp-config.php"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range defineRE.FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// processlist returns the IDs of user's sessions on the shard's MariaDB.
func processlist(t *testing.T, sh *shard.Shard, user string) map[int64]bool {
	t.Helper()
	db, err := sh.DB().OpenRoot("information_schema")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", user)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out[id] = true
	}
	return out
}

// directReach asks the site's PHP (running as its Unix user) to connect
// to MariaDB's own socket with the site's credentials.
func (c *cluster) directReach(host string, sh *shard.Shard) string {
	c.t.Helper()
	code, _, body := c.request("GET", host, "/?pooltest_direct="+url.QueryEscape(sh.DB().Socket()), nil, nil)
	if code != 200 {
		c.t.Fatalf("pooltest_direct = %d %.300s", code, body)
	}
	return body
}

// sleepSession runs the plugin's SELECT SLEEP(1) request and returns the
// MariaDB session that ran it (seen in the process list meanwhile); during,
// if set, is called once that session is seen, while the request runs.
func (c *cluster) sleepSession(host string, sh *shard.Shard, during func(id int64)) int64 {
	c.t.Helper()
	db, err := sh.DB().OpenRoot("information_schema")
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close()
	done := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", c.srv.URL+"/?pooltest_sleep=1", nil)
		req.Host = host + ":" + c.port
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- string(b)
	}()
	var id int64
	for id == 0 {
		err := db.QueryRow("SELECT ID FROM PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(1) AS pooltest_sleep%'").Scan(&id)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			c.t.Fatal(err)
		}
		select {
		case body := <-done:
			if id == 0 {
				c.t.Fatalf("the sleep request ended (%q) before its session was seen", body)
			}
			done <- body
		default:
		}
	}
	if during != nil {
		during(id)
	}
	if body := <-done; body != "slept" {
		c.t.Fatalf("pooltest_sleep = %q", body)
	}
	return id
}

// TestWordPressThroughPooler: with the pooler on (the zero Config) a
// WordPress site's traffic — installation, logging in, publishing,
// commenting, searching, WP-Cron and a plugin using SQL_CALC_FOUND_ROWS
// and transactions from concurrent requests — goes through the shard's
// pooler, whose socket wp-config.php names; MariaDB sees only the pooler's
// connections of the site's user, and the site's PHP cannot reach MariaDB's
// own socket.
func TestWordPressThroughPooler(t *testing.T) {
	c := newCluster(t)
	sh := c.start("local")
	defer c.deleteAll()
	p := sh.Pooler()
	if p == nil {
		t.Fatal("no pooler running with DirectDB unset")
	}
	st := c.create("pool.localhost", "uid-pool", "local", "Pooled Site", adminFor(t))
	n := sh.NamesFor(st.Metadata.UID)
	layout := shard.Layout{Name: "local", Dir: filepath.Join(c.dir, "shard-local")}
	consts := wpConfigDB(t, n)
	if want := "localhost:" + layout.PoolerSocket(); consts["DB_HOST"] != want {
		t.Fatalf("DB_HOST = %q, want the pooler's %q", consts["DB_HOST"], want)
	}
	user := consts["DB_USER"]
	stats := p.Stats()
	if stats.QueriesPrimary == 0 || stats.PeakBackends == 0 {
		t.Fatalf("the installation ran no query through the pooler: %+v", stats)
	}
	installPoolTestPlugin(t, n)

	// Log in, publish a post through the REST API, comment on it as the
	// admin, find it by search.
	host := "pool.localhost"
	cookies := c.login(host)
	if !c.dashboard(host, cookies) {
		t.Fatal("the dashboard does not open after logging in")
	}
	code, _, nonce := c.request("GET", host, "/wp-admin/admin-ajax.php?action=rest-nonce", nil, http.Header{"Cookie": {cookies}})
	if code != 200 || nonce == "" {
		t.Fatalf("rest-nonce = %d %q", code, nonce)
	}
	post := `{"title":"Pooled zanzibar post","content":"Written through the pooler.","status":"publish"}`
	code, _, body := c.request("POST", host, "/?rest_route=/wp/v2/posts", strings.NewReader(post), http.Header{
		"Cookie": {cookies}, "X-Wp-Nonce": {nonce}, "Content-Type": {"application/json"}})
	var created struct {
		ID   int    `json:"id"`
		Link string `json:"link"`
	}
	if err := json.Unmarshal([]byte(body), &created); code != 201 || err != nil || created.ID == 0 {
		t.Fatalf("publish = %d %v\n%.500s", code, err, body)
	}
	form := url.Values{"comment_post_ID": {strconv.Itoa(created.ID)}, "comment": {"A pooled comment, quite sincere."}}
	code, _, body = c.request("POST", host, "/wp-comments-post.php", strings.NewReader(form.Encode()), http.Header{
		"Cookie": {cookies}, "Content-Type": {"application/x-www-form-urlencoded"}})
	if code != 302 {
		t.Fatalf("comment = %d\n%.500s", code, body)
	}
	link, err := url.Parse(created.Link)
	if err != nil {
		t.Fatal(err)
	}
	code, _, body = c.request("GET", host, link.RequestURI(), nil, nil)
	if code != 200 || !strings.Contains(body, "Pooled zanzibar post") || !strings.Contains(body, "A pooled comment, quite sincere.") {
		t.Fatalf("the post page = %d, lacks the post or its comment\n%.800s", code, body)
	}
	code, _, body = c.request("GET", host, "/?s=zanzibar", nil, nil)
	if code != 200 || !strings.Contains(body, "Pooled zanzibar post") {
		t.Fatalf("search = %d, lacks the post\n%.800s", code, body)
	}

	// The plugin, from concurrent requests: each sees its own
	// FOUND_ROWS() and its own transactions.
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := i + 2
				r, err := c.poolTest(host, k, fmt.Sprintf("r%dk%d", round, k))
				if err == nil {
					err = r.check(k)
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
	// While a request runs a statement, the site has one client session
	// on the pooler, and MariaDB has no session of the site's user but the
	// pooler's backends: PHP did not connect to MariaDB itself.
	id := c.sleepSession(host, sh, func(id int64) {
		a, sessions := p.Stats().Accounts[user], processlist(t, sh, user)
		if a.Clients != 1 || len(sessions) != a.Backends || !sessions[id] {
			t.Errorf("during a request: pooler account %+v; MariaDB sessions of %s %v (the request's %d)", a, user, sessions, id)
		}
	})
	// And the session outlives the request (the pooler keeps it).
	if !processlist(t, sh, user)[id] {
		t.Errorf("session %d the request used is gone after it: not the pooler's", id)
	}
	if got, want := len(processlist(t, sh, user)), p.Stats().Accounts[user].Backends; got != want || got == 0 {
		t.Errorf("MariaDB has %d sessions of %s, the pooler %d backends", got, user, want)
	}

	// WP-Cron (as the shard's cron loop runs it: the site's user, through
	// wp-config.php) runs the plugin's event.
	before := p.Stats().QueriesPrimary
	if err := shard.RunSiteCron(c.ctx, sh, c.get(st.Metadata.Name)); err != nil {
		t.Fatal(err)
	}
	if p.Stats().QueriesPrimary == before {
		t.Error("WP-Cron ran no statement through the pooler")
	}
	if v, err := sh.DB().QueryString(c.ctx, "SELECT option_value FROM "+n.DB+".wp_options WHERE option_name = 'pooltest_cron_ran'"); err != nil || v == "" {
		t.Fatalf("the plugin's cron event did not run: %q %v", v, err)
	}

	// The site's PHP cannot reach MariaDB's own socket (only root's and
	// mariadbd's group's), so its pooler limits hold.
	if os.Geteuid() == 0 {
		if got := c.directReach(host, sh); !strings.HasPrefix(got, "refused 2002") {
			t.Errorf("the site's PHP connecting to MariaDB's socket: %q, want refused (2002)", got)
		}
	}
}

// TestPoolerClientLimitFromPlan: a site's db_clients limit is its pooler
// account's: one connection more is refused with MariaDB's error 1226, and
// a changed limit applies on the next pass.
func TestPoolerClientLimitFromPlan(t *testing.T) {
	c := newCluster(t)
	sh := c.start("local")
	defer c.deleteAll()
	st := c.create("limit.localhost", "uid-limit", "local", "Limited", adminFor(t))
	if _, err := c.st.UpdateSite(c.ctx, st.Metadata.Name, func(s *site.Site) error {
		s.Spec.Limits.DBClients = 2
		s.Metadata.Generation++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.converge(); err != nil {
		t.Fatal(err)
	}
	n := sh.NamesFor(st.Metadata.UID)
	consts := wpConfigDB(t, n)
	layout := shard.Layout{Name: "local", Dir: filepath.Join(c.dir, "shard-local")}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = consts["DB_USER"], consts["DB_PASSWORD"], "unix", layout.PoolerSocket(), consts["DB_NAME"]
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	hold := func() (*sql.Conn, error) {
		cn, err := db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		if err := cn.PingContext(ctx); err != nil {
			cn.Close()
			return nil, err
		}
		return cn, nil
	}
	var held []*sql.Conn
	defer func() {
		for _, cn := range held {
			cn.Close()
		}
	}()
	for i := 0; i < 2; i++ {
		cn, err := hold()
		if err != nil {
			t.Fatalf("client %d of 2: %v", i+1, err)
		}
		held = append(held, cn)
	}
	_, err = hold()
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1226 {
		t.Fatalf("client 3 of a limit of 2: %v, want error 1226", err)
	}
	if a := sh.Pooler().Stats().Accounts[consts["DB_USER"]]; a.Refused == 0 || a.Clients != 2 {
		t.Errorf("account stats %+v, want 2 clients and a refusal", a)
	}
	// Raised: one more gets in.
	if _, err := c.st.UpdateSite(c.ctx, st.Metadata.Name, func(s *site.Site) error {
		s.Spec.Limits.DBClients = 3
		s.Metadata.Generation++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.converge(); err != nil {
		t.Fatal(err)
	}
	cn, err := hold()
	if err != nil {
		t.Fatalf("client 3 of a limit of 3: %v", err)
	}
	held = append(held, cn)
}

// TestDirectDB: with DirectDB the shard runs no pooler, wp-config.php
// names MariaDB's own socket, which the site's PHP reaches, and its
// connections end with its requests.
func TestDirectDB(t *testing.T) {
	c := newCluster(t)
	c.tweak = func(cfg *shard.Config) { cfg.DirectDB = true }
	sh := c.start("local")
	defer c.deleteAll()
	if sh.Pooler() != nil {
		t.Fatal("a pooler runs with DirectDB")
	}
	st := c.create("direct.localhost", "uid-direct", "local", "Direct", adminFor(t))
	n := sh.NamesFor(st.Metadata.UID)
	consts := wpConfigDB(t, n)
	if want := "localhost:" + sh.DB().Socket(); consts["DB_HOST"] != want {
		t.Fatalf("DB_HOST = %q, want MariaDB's %q", consts["DB_HOST"], want)
	}
	installPoolTestPlugin(t, n)
	host := "direct.localhost"
	r, err := c.poolTest(host, 3, "direct")
	if err != nil || r.check(3) != nil {
		t.Fatalf("pooltest: %+v %v", r, err)
	}
	// The session a request ran on ends with it (MariaDB ends a closed
	// session asynchronously: asked until it is gone).
	id := c.sleepSession(host, sh, nil)
	for deadline := time.Now().Add(30 * time.Second); processlist(t, sh, consts["DB_USER"])[id]; {
		if time.Now().After(deadline) {
			t.Fatalf("session %d outlived its request without a pooler", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.directReach(host, sh); got != "connected" {
		t.Errorf("the site's PHP connecting to MariaDB's socket: %q", got)
	}
}

// TestShardLocalReplica: with Replica "local" the shard runs a second
// mariadbd replicating its own (its directory closed to site users like
// the primary's), watches it, and its pooler sends a site's reads there
// once the replica has caught up; the site's writes still go to the
// primary.
func TestShardLocalReplica(t *testing.T) {
	c := newCluster(t)
	c.tweak = func(cfg *shard.Config) { cfg.Replica = shard.ReplicaLocal }
	sh := c.start("local")
	defer c.deleteAll()
	if sh.Replica() == nil {
		t.Fatal("no local replica")
	}
	st := c.create("replica.localhost", "uid-replica", "local", "Replicated", adminFor(t))
	n := sh.NamesFor(st.Metadata.UID)
	installPoolTestPlugin(t, n)
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Minute)
	defer cancel()
	for !sh.ReplicaGate().Usable("") {
		if ctx.Err() != nil {
			rs, err := sh.Replica().ReplicaStatus(c.ctx)
			t.Fatalf("the replica never became usable: %+v %v", rs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p := sh.Pooler()
	before := p.Stats()
	for i := 0; i < 3; i++ {
		if code, _, body := c.request("GET", "replica.localhost", "/?i="+strconv.Itoa(i), nil, nil); code != 200 || !strings.Contains(body, "Replicated") {
			t.Fatalf("GET / = %d\n%.300s", code, body)
		}
	}
	after := p.Stats()
	if after.QueriesReplica == before.QueriesReplica {
		t.Errorf("no read went to the replica: before %+v, after %+v", before, after)
	}
	// Writes and transactions still work (on the primary).
	if r, err := c.poolTest("replica.localhost", 3, "replica"); err != nil || r.check(3) != nil {
		t.Fatalf("pooltest: %+v %v", r, err)
	}
	if os.Geteuid() == 0 {
		fi, err := os.Stat(sh.Replica().Dir)
		if err != nil || fi.Mode().Perm() != 0o710 {
			t.Errorf("replica directory %s: %v %v, want mode 0710", sh.Replica().Dir, fi.Mode(), err)
		}
	}
}

// TestSwitchDirectDB: a shard restarted with DirectDB switched rewrites its
// sites' wp-config.php on its first pass (and opens or closes MariaDB's
// directory to them), and the site serves either way.
func TestSwitchDirectDB(t *testing.T) {
	c := newCluster(t)
	sh := c.start("local")
	st := c.create("switch.localhost", "uid-switch", "local", "Switching", adminFor(t))
	defer c.deleteAll()
	n := sh.NamesFor(st.Metadata.UID)
	layout := shard.Layout{Name: "local", Dir: filepath.Join(c.dir, "shard-local")}
	installPoolTestPlugin(t, n)
	for _, direct := range []bool{true, false} {
		c.stop("local")
		c.tweak = func(cfg *shard.Config) { cfg.DirectDB = direct }
		sh = c.start("local")
		c.routes()
		want, mode := "localhost:"+layout.PoolerSocket(), os.FileMode(0o710)
		if direct {
			want, mode = "localhost:"+sh.DB().Socket(), 0o711
		}
		if got := wpConfigDB(t, n)["DB_HOST"]; got != want {
			t.Errorf("DirectDB %v: DB_HOST = %q, want %q", direct, got, want)
		}
		c.check("switch.localhost", "/", 200, "Switching")
		if r, err := c.poolTest("switch.localhost", 2, fmt.Sprintf("d%v", direct)); err != nil || r.check(2) != nil {
			t.Errorf("DirectDB %v: pooltest %+v %v", direct, r, err)
		}
		if os.Geteuid() == 0 {
			if fi, err := os.Stat(sh.DB().Dir); err != nil || fi.Mode().Perm() != mode {
				t.Errorf("DirectDB %v: MariaDB's directory %v %v, want %v", direct, fi.Mode(), err, mode)
			}
		}
	}
}
