package shard_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

func needStack(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/usr/sbin/mariadbd", "/usr/sbin/php-fpm8.2", "/usr/share/wordpress/wp-load.php"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing (make deps)", p)
		}
	}
	if testing.Short() {
		t.Skip("integration test")
	}
}

func TestShardConvergesAndDeletes(t *testing.T) {
	needStack(t)
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	// After the shard stopped: its spare pools' users, if a pass after
	// the last deletion did not remove them.
	t.Cleanup(func() {
		if _, err := shard.RemoveUsersUnder(context.Background(), dir); err != nil {
			t.Errorf("removing the shard's users: %v", err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "cp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ed := edge.New(edge.Config{Logger: log})
	srv := httptest.NewServer(ed)
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	sh := shard.New(shard.Config{
		Name: "local", Dir: filepath.Join(dir, "shard"), Logger: log,
		PublicURL: func(d string) string { return "http://" + d + ":" + port },
		Resync:    200 * time.Millisecond, CronInterval: 300 * time.Millisecond,
		// Every pass is a full one, so the idle pass below checks that a
		// full level-based convergence of a converged site writes nothing.
		FullResync: time.Nanosecond,
		PurgeURL:   "http://127.0.0.1:1/.aipress/purge",
		PurgeKey:   func(site string) string { return "key-" + site },
	})
	if err := sh.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	ed = edge.New(edge.Config{Logger: log, AllowedSymlinkRoots: sh.AllowedSymlinkRoots()})
	srv.Config.Handler = ed
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx, shard.FromStore(st)) }()
	defer func() { cancel(); <-done }()

	now := time.Now().UTC()
	s := &site.Site{
		Metadata: site.Metadata{Name: "a.localhost", UID: "uid-a", CreatedAt: now},
		Spec:     site.Spec{Domain: "a.localhost", Title: "Shard Test", Plan: "basic", Admin: site.Admin{User: "admin", Email: "a@example.com"}},
		Status:   site.Status{Phase: site.PhasePending, Shard: "local"},
	}
	if err := st.CreateSite(ctx, s); err != nil {
		t.Fatal(err)
	}
	sh.Wake()
	got := waitPhase(t, st, "a.localhost", site.PhaseReady, 2*time.Minute)
	n := sh.NamesFor(got.Metadata.UID)
	if got.Status.Docroot != n.Docroot || got.Status.Endpoint != "unix:"+n.Socket {
		t.Errorf("reported docroot %q endpoint %q, want the layout's %q %q", got.Status.Docroot, got.Status.Endpoint, n.Docroot, n.Socket)
	}
	ed.SetTable(edge.NewTable([]edge.Route{edge.RouteForSite(got, edge.Location{Docroot: n.Docroot, Endpoint: "unix:" + n.Socket})}))

	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.Host = "a.localhost:" + port
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Shard Test") {
		t.Fatalf("GET / = %d\n%.500s", resp.StatusCode, body)
	}
	// The aipress-cache mu-plugin runs and tags the home page (which lists
	// the installer's first post).
	if tags := resp.Header.Get("X-AIPress-Tags"); !strings.HasPrefix(tags, "home, post-") {
		t.Errorf("X-AIPress-Tags = %q, want home, post-…", tags)
	}

	n = sh.NamesFor("uid-a")
	// wp-config carries the purge endpoint and this site's key; the plugin is
	// a link to the shard's one copy.
	cfg, err := os.ReadFile(filepath.Join(n.Docroot, "wp-config.php"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"define('AIPRESS_PURGE_URL', 'http://127.0.0.1:1/.aipress/purge');",
		"define('AIPRESS_PURGE_KEY', 'key-a.localhost');",
		"define('AIPRESS_PURGE_HOST', 'a.localhost');",
	} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("wp-config.php lacks %s", want)
		}
	}
	link := filepath.Join(n.Docroot, "wp-content", "mu-plugins", "aipress-cache.php")
	if target, err := os.Readlink(link); err != nil || target != filepath.Join(dir, "shard", "lib", "aipress-cache.php") {
		t.Errorf("mu-plugin link = %q, %v", target, err)
	}
	// WP-Cron is driven by the shard (DISABLE_WP_CRON is set for visitors).
	cronDeadline := time.Now().Add(time.Minute)
	for {
		v, err := sh.DB().QueryString(ctx, "SELECT option_value FROM "+n.DB+".wp_options WHERE option_name = 'aipress_cron_last_run'")
		if err == nil && v != "" {
			break
		}
		if time.Now().After(cronDeadline) {
			t.Fatalf("cron never ran: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Once it has run, cron starts WordPress only when an event is due.
	cronRuns := func() string {
		t.Helper()
		v, err := sh.DB().QueryString(ctx, "SELECT option_value FROM "+n.DB+".wp_options WHERE option_name = 'aipress_cron_last_run'")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	setFirstEvent := func(at int64) {
		t.Helper()
		// The schedule's first key is replaced; the "run" marker cleared.
		if err := sh.DB().Exec(ctx, "UPDATE "+n.DB+".wp_options SET option_value = REGEXP_REPLACE(option_value, '^a:([0-9]+):\\{i:[0-9]+;', CONCAT('a:\\1:{i:', ?, ';')) WHERE option_name = 'cron'", at); err != nil {
			t.Fatal(err)
		}
		if err := sh.DB().Exec(ctx, "UPDATE "+n.DB+".wp_options SET option_value = '' WHERE option_name = 'aipress_cron_last_run'"); err != nil {
			t.Fatal(err)
		}
		v, err := sh.DB().QueryString(ctx, "SELECT LEFT(option_value, 40) FROM "+n.DB+".wp_options WHERE option_name = 'cron'")
		if err != nil || !strings.Contains(v, "{i:"+strconv.FormatInt(at, 10)+";") {
			t.Fatalf("cron option not rewritten: %q, %v", v, err)
		}
	}
	setFirstEvent(time.Now().Add(time.Hour).Unix())
	time.Sleep(2 * time.Second) // several cron intervals
	if v := cronRuns(); v != "" {
		t.Errorf("cron ran with its first event an hour away (aipress_cron_last_run %q)", v)
	}
	setFirstEvent(time.Now().Add(-time.Minute).Unix())
	for cronDeadline = time.Now().Add(time.Minute); cronRuns() == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(cronDeadline) {
			t.Fatal("cron did not run with an event due")
		}
	}
	// A restarted shard knows the last run from the site's own record: with
	// nothing due and a run 5 minutes ago, it starts no WordPress; with the
	// record older than the idle hour, or in the future (the site can write
	// it), it does.
	for _, c := range []struct {
		name    string
		lastRun int64
		runs    bool
	}{
		{"recent", time.Now().Add(-5 * time.Minute).Unix(), false},
		{"over an hour ago", time.Now().Add(-2 * time.Hour).Unix(), true},
		{"in the future", time.Now().Add(24 * time.Hour).Unix(), true},
	} {
		setFirstEvent(time.Now().Add(time.Hour).Unix())
		mark := strconv.FormatInt(c.lastRun, 10)
		if err := sh.DB().Exec(ctx, "UPDATE "+n.DB+".wp_options SET option_value = ? WHERE option_name = 'aipress_cron_last_run'", mark); err != nil {
			t.Fatal(err)
		}
		shard.ForgetCronRuns(sh)
		ran, wait := false, 3*time.Second // ten cron intervals
		if c.runs {
			wait = time.Minute
		}
		for end := time.Now().Add(wait); time.Now().Before(end) && !ran; time.Sleep(100 * time.Millisecond) {
			ran = cronRuns() != mark
		}
		if ran != c.runs {
			t.Errorf("after a restart with the last run %s: cron ran = %v, want %v", c.name, ran, c.runs)
		}
	}
	// A second pass changes nothing: no status writes.
	before := got.Metadata.ResourceVersion
	if err := sh.Converge(ctx, shard.FromStore(st)); err != nil {
		t.Fatal(err)
	}
	again, _ := st.GetSite(ctx, "a.localhost")
	if again.Metadata.ResourceVersion != before {
		t.Errorf("idle converge wrote status: rv %d → %d", before, again.Metadata.ResourceVersion)
	}

	// A tenant deleting the installer's option does not make the shard
	// reinstall over its data: "installed" is root's marker file.
	if _, err := sh.DB().QueryString(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	db, err := sh.DB().OpenAs("root", mustRead(t, filepath.Join(dir, "shard", "mariadb", "root-password")), n.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "INSERT INTO wp_posts (post_title, post_content, post_excerpt, to_ping, pinged, post_content_filtered) VALUES ('kept', '', '', '', '', '')"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "DELETE FROM wp_options WHERE option_name = 'aipress_installed'"); err != nil {
		t.Fatal(err)
	}
	if err := sh.Converge(ctx, shard.FromStore(st)); err != nil {
		t.Fatal(err)
	}
	if v, _ := sh.DB().QueryString(ctx, "SELECT COUNT(*) FROM "+n.DB+".wp_posts WHERE post_title = 'kept'"); v != "1" {
		t.Fatalf("the site's data was lost (kept posts = %q): the shard reinstalled", v)
	}

	// Plan limits: the pool's request time limit and the database user's
	// connection limit take the defaults when the spec names none, and a
	// plan change updates both.
	limits := func() (string, string) {
		t.Helper()
		conf, err := os.ReadFile(sh.FPM().PoolFile(n.Pool))
		if err != nil {
			t.Fatal(err)
		}
		timeout := ""
		for _, l := range strings.Split(string(conf), "\n") {
			if v, ok := strings.CutPrefix(l, "request_terminate_timeout = "); ok {
				timeout = v
			}
		}
		conns, err := sh.DB().QueryString(ctx, "SELECT max_user_connections FROM mysql.user WHERE User = ?", n.DBUser)
		if err != nil {
			t.Fatal(err)
		}
		return timeout, conns
	}
	if timeout, conns := limits(); timeout != "120s" || conns != "20" {
		t.Errorf("default limits: request_terminate_timeout %q, max_user_connections %q; want 120s, 20", timeout, conns)
	}
	if _, err := st.UpdateSite(ctx, "a.localhost", func(s *site.Site) error {
		s.Spec.PHP.RequestTimeoutSeconds, s.Spec.Limits.DBConnections = 45, 7
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := sh.Converge(ctx, shard.FromStore(st)); err != nil {
		t.Fatal(err)
	}
	if timeout, conns := limits(); timeout != "45s" || conns != "7" {
		t.Errorf("after a plan change: request_terminate_timeout %q, max_user_connections %q; want 45s, 7", timeout, conns)
	}

	// A core version the shard does not have fails clearly, creating nothing.
	bad := &site.Site{
		Metadata: site.Metadata{Name: "old.localhost", UID: "uid-old", CreatedAt: now},
		Spec:     site.Spec{Domain: "old.localhost", Title: "Old", CoreVersion: "4.0", Admin: site.Admin{User: "admin", Email: "a@example.com"}},
		Status:   site.Status{Phase: site.PhasePending, Shard: "local"},
	}
	if err := st.CreateSite(ctx, bad); err != nil {
		t.Fatal(err)
	}
	sh.Wake()
	for deadline := time.Now().Add(time.Minute); ; {
		s, _ := st.GetSite(ctx, "old.localhost")
		if s != nil && s.Status.Phase == site.PhaseFailed {
			if c := s.Status.Condition("Serving"); c == nil || !strings.Contains(c.Message, "core 4.0 is not available") {
				t.Fatalf("failed site conditions: %+v", s.Status.Conditions)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("site with an unknown core version did not fail")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(sh.NamesFor("uid-old").Dir); !os.IsNotExist(err) {
		t.Errorf("failed site left a directory: %v", err)
	}
	if err := st.DeleteSite(ctx, "old.localhost"); err != nil {
		t.Fatal(err)
	}

	// Delete: everything goes.
	if _, err := st.UpdateSite(ctx, "a.localhost", func(s *site.Site) error { t := time.Now().UTC(); s.Metadata.DeletionRequested = &t; return nil }); err != nil {
		t.Fatal(err)
	}
	sh.Wake()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := st.GetSite(ctx, "a.localhost"); err == store.ErrNotFound || (err != nil && strings.Contains(err.Error(), "not found")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("site not finalized")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(n.Dir); !os.IsNotExist(err) {
		t.Errorf("site dir remains: %v", err)
	}
	if ok, _ := sh.DB().DatabaseExists(ctx, n.DB); ok {
		t.Error("database remains")
	}
	if ok, _ := sh.DB().UserExists(ctx, n.DBUser); ok {
		t.Error("db user remains")
	}
	if _, err := os.Stat(sh.FPM().PoolFile(n.Pool)); !os.IsNotExist(err) {
		t.Error("pool file remains")
	}
	if os.Geteuid() == 0 {
		if err := exec.Command("id", n.Unix).Run(); err == nil {
			t.Error("unix user remains")
		}
	}
}

func waitPhase(t *testing.T, st store.Store, name string, want site.Phase, d time.Duration) *site.Site {
	t.Helper()
	deadline := time.Now().Add(d)
	var last *site.Site
	for time.Now().Before(deadline) {
		s, err := st.GetSite(context.Background(), name)
		if err == nil {
			last = s
			if s.Status.Phase == want {
				return s
			}
			if s.Status.Phase == site.PhaseFailed {
				t.Fatalf("site failed: %+v", s.Status.Conditions)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("site %s not %s in %s; last status %+v", name, want, d, last.Status)
	return nil
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// A data directory whose sockets would not fit in a socket address is
// refused at once, with the reason, instead of a pool that never appears.
func TestDeepDataDirRefused(t *testing.T) {
	deep := "/" + strings.Repeat("d", 90)
	sh := shard.New(shard.Config{Name: "s-long-name", Dir: deep})
	err := sh.Prepare(context.Background())
	if err == nil || !strings.Contains(err.Error(), "too deep") || !strings.Contains(err.Error(), "shorter --data-dir") {
		t.Fatalf("Prepare in %s: %v, want a clear refusal", deep, err)
	}
	if _, serr := os.Stat(deep); serr == nil {
		t.Errorf("Prepare made %s before refusing", deep)
	}
}

// A data directory holding a character php-fpm or mariadb-install-db
// cannot take in a path is refused at once, with the reason; a tame one
// passes this check (and, made too deep on purpose, stops at the next).
func TestDataDirCharsRefused(t *testing.T) {
	for _, tc := range []struct {
		dir string
		ok  bool
	}{
		{"/srv/a=b", false},
		{"/srv/my data", false},
		{"/srv/a;b", false},
		{"/srv/a#b", false},
		{"/srv/a$b", false},
		{`/srv/a"b`, false},
		{"/srv/a\nb", false},
		{"/srv/a*b", false},
		{"/srv/a\tb", false},
		{"/srv/dätä(1)!%&^{}_1.2+x@host:9,~a/" + strings.Repeat("d", 90), true},
	} {
		dir := filepath.Join(t.TempDir(), tc.dir)
		err := shard.New(shard.Config{Name: "s", Dir: dir}).Prepare(context.Background())
		refused := err != nil && strings.Contains(err.Error(), "choose a --data-dir without")
		if refused == tc.ok {
			t.Errorf("Prepare in %q: %v (want refused: %v)", tc.dir, err, !tc.ok)
		}
		if !tc.ok {
			if _, serr := os.Stat(dir); serr == nil {
				t.Errorf("Prepare made %q before refusing", dir)
			}
		}
	}
}
