package shard_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// cluster is a control-plane store, an edge and several real shards, each
// with its own directory, MariaDB server and php-fpm master.
type cluster struct {
	t *testing.T
	// logs is what the shards logged (warnings and errors).
	logs   *lockedBuffer
	ctx    context.Context
	dir    string
	st     store.Store
	src    *moveSites
	srv    *httptest.Server
	port   string
	log    *slog.Logger
	shards map[string]*shard.Shard
	roots  []string
	ed     *edge.Server
	// volumes is the shards' Config.Volumes (empty: auto); stops stops
	// a running shard by name.
	volumes string
	stops   map[string]func()
	// artefacts is the shards' artefact store (nil: none).
	artefacts *artefact.Store
	// tweak, if set, changes each shard's configuration before it starts.
	tweak func(*shard.Config)

	repoMu  sync.Mutex
	repoMap map[string]*repo.Repo
}

// repos is the shards' shard.RepoAccess: one repository per name under
// the test's directory, created on first use, with one key.
func (c *cluster) repos(ctx context.Context, name string) (*repo.Repo, error) {
	c.repoMu.Lock()
	defer c.repoMu.Unlock()
	if r := c.repoMap[name]; r != nil {
		return r, nil
	}
	dir := filepath.Join(c.dir, "backups", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r, err := repo.OpenURL(ctx, "file://"+dir, testKEK, true, nil)
	if err != nil {
		return nil, err
	}
	if c.repoMap == nil {
		c.repoMap = map[string]*repo.Repo{}
		c.t.Cleanup(func() {
			for _, r := range c.repoMap {
				r.Close()
			}
		})
	}
	c.repoMap[name] = r
	return r, nil
}

var testKEK = []byte("0123456789abcdef0123456789abcdef")

// moveKey is the shards' shard.MoveKeyFunc: the control plane's derivation
// from testKEK.
func (c *cluster) moveKey(_ context.Context, _, uid, moveID string) ([]byte, error) {
	return repos.MoveKey(testKEK, uid, moveID), nil
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	needStack(t)
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	// After the shards stopped (cleanups run last first): the site users
	// of sites the test did not delete.
	t.Cleanup(func() {
		if _, err := shard.RemoveUsersUnder(context.Background(), dir); err != nil {
			t.Errorf("removing the site users: %v", err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "cp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, os.Stderr), &slog.HandlerOptions{Level: slog.LevelWarn}))
	c := &cluster{t: t, ctx: ctx, dir: dir, st: st, log: log, logs: logs, shards: map[string]*shard.Shard{}}
	c.src = newMoveSites(st)
	c.ed = edge.New(edge.Config{Logger: log})
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.ed.ServeHTTP(w, r) }))
	t.Cleanup(c.srv.Close)
	c.port = c.srv.URL[strings.LastIndex(c.srv.URL, ":")+1:]
	return c
}

// start prepares and runs a shard called name in its own directory. With
// run false the shard's servers are started but no convergence loop runs:
// the test drives Converge itself.
func (c *cluster) start(name string) *shard.Shard {
	c.t.Helper()
	return c.startWith(name, nil)
}

// startWith is start with the shard's sites' databases on db (nil: the
// shard runs its own MariaDB).
func (c *cluster) startWith(name string, db *mariadb.Remote) *shard.Shard {
	c.t.Helper()
	cfg := shard.Config{
		Database: db,
		Name:     name, Dir: filepath.Join(c.dir, "shard-"+name), Logger: c.log,
		PublicURL:    func(d string) string { return "http://" + d + ":" + c.port },
		Resync:       time.Hour, // the test drives convergence
		MoveGrace:    -1,        // and needs no edges to catch up
		CronInterval: -1,
		FullResync:   time.Nanosecond,
		TransferURL:  "file://" + filepath.Join(c.dir, "transfer"),
		Repos:        c.repos,
		MoveKey:      c.moveKey,
		JobPoll:      100 * time.Millisecond,
		Volumes:      c.volumes,
		Artefacts:    c.artefacts,
		// No spare pools unless a test asks (TestSparePools): making
		// them reloads php-fpm 2 s after a site's creation, on a timer,
		// which restarts php-fpm's counters and adds a reload to the
		// tests that count them.
		Spares: -1,
	}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	sh := shard.New(cfg)
	if err := sh.Prepare(c.ctx); err != nil {
		c.t.Fatal(err)
	}
	c.roots = append(c.roots, sh.AllowedSymlinkRoots()...)
	c.ed = edge.New(edge.Config{Logger: c.log, AllowedSymlinkRoots: c.roots})
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx, c.src) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	c.t.Cleanup(stop)
	if c.stops == nil {
		c.stops = map[string]func(){}
	}
	c.stops[name] = stop
	select {
	case <-sh.Ready():
	case <-time.After(2 * time.Minute):
		c.t.Fatalf("shard %s not ready", name)
	}
	c.shards[name] = sh
	return sh
}

// stop stops shard name (its Run returns: php-fpm and MariaDB stop, its
// volumes are unmounted).
func (c *cluster) stop(name string) {
	c.stops[name]()
	delete(c.shards, name)
}

// converge runs one pass of every named shard (all when none are named).
func (c *cluster) converge(names ...string) error {
	if len(names) == 0 {
		for n := range c.shards {
			names = append(names, n)
		}
	}
	var errs []error
	for _, n := range names {
		if err := c.shards[n].Converge(c.ctx, c.src); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// create stores a new site on shard and converges it until Ready.
func (c *cluster) create(name, uid, shardName, title string, admin site.Admin) *site.Site {
	c.t.Helper()
	return c.createIn("", name, uid, shardName, title, admin)
}

// createIn is create in organisation org ("": the default one), created
// first if need be.
func (c *cluster) createIn(org, name, uid, shardName, title string, admin site.Admin) *site.Site {
	c.t.Helper()
	if org != "" {
		if _, err := c.st.GetOrg(c.ctx, org); errors.Is(err, store.ErrNotFound) {
			if err := c.st.CreateOrg(c.ctx, &store.Org{Name: org, DisplayName: org, CreatedAt: time.Now().UTC()}); err != nil {
				c.t.Fatal(err)
			}
		} else if err != nil {
			c.t.Fatal(err)
		}
	}
	s := &site.Site{
		Metadata: site.Metadata{Name: name, UID: uid, Org: org, CreatedAt: time.Now().UTC()},
		Spec:     site.Spec{Domain: name, Title: title, Plan: "basic", Admin: admin, WAF: site.WAF{Mode: site.WAFOff}},
		Status:   site.Status{Phase: site.PhasePending, Shard: shardName},
	}
	if err := c.st.CreateSite(c.ctx, s); err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		err := c.converge(shardName)
		got := c.get(name)
		if got.Status.Phase == site.PhaseReady {
			c.routes()
			return got
		}
		if i == 4 {
			c.t.Fatalf("site %s not Ready: %v; status %+v", name, err, got.Status)
		}
	}
	return nil
}

func (c *cluster) get(name string) *site.Site {
	c.t.Helper()
	s, err := c.src.get(c.ctx, name)
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// routes points the edge at where the store says every site is served.
func (c *cluster) routes() {
	page, err := c.st.ListSites(c.ctx, store.ListOptions{Limit: 1000})
	if err != nil {
		c.t.Fatal(err)
	}
	var rs []edge.Route
	for i := range page.Items {
		s := &page.Items[i]
		var loc edge.Location
		if sh := c.shards[s.Status.Shard]; sh != nil { // every shard of the cluster is local
			n := sh.NamesFor(s.Metadata.UID)
			loc = edge.Location{Docroot: n.Docroot, Endpoint: "unix:" + n.Socket}
		}
		rs = append(rs, edge.RouteForSite(s, loc))
	}
	c.ed.SetTable(edge.NewTable(rs))
}

// request sends a request for host through the edge.
func (c *cluster) request(method, host, path string, body io.Reader, hdr http.Header) (int, http.Header, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.srv.URL+path, body)
	req.Host = host + ":" + c.port
	for k, v := range hdr {
		req.Header[k] = v
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// deleteAll requests the deletion of every site and converges until the
// records are gone, so no Unix users outlive the test.
func (c *cluster) deleteAll() {
	c.t.Helper()
	page, err := c.st.ListSites(c.ctx, store.ListOptions{Limit: 1000})
	if err != nil {
		c.t.Fatal(err)
	}
	for _, s := range page.Items {
		if _, err := c.st.UpdateSite(c.ctx, s.Metadata.Name, func(s *site.Site) error {
			now := time.Now().UTC()
			s.Metadata.DeletionRequested = &now
			return nil
		}); err != nil {
			c.t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		_ = c.converge()
	}
}

// moveSites is the Sites a shard sees: FromStore over the SQLite store,
// with two stand-ins until the store implements them. ListSites lists
// every site and keeps those whose site.Shards() names the shard (the store
// filters on Status.Shard only so far). And when the store does not keep
// Site.Move yet, moves are kept here, beside it, and UpdateMove applies fn
// and site.AdvanceMove as FromStore does, writing the status the switch
// changes to the store.
type moveSites struct {
	st   store.Store
	from shard.Sites

	mu    sync.Mutex
	moves map[string]*site.Move // by site UID; nil map: the store keeps moves
	probe bool
}

func newMoveSites(st store.Store) *moveSites {
	return &moveSites{st: st, from: shard.FromStore(st)}
}

// setMove changes site name with fn, as the control plane does to start
// or abort a move.
func (m *moveSites) setMove(ctx context.Context, name string, fn func(*site.Site)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var uid string
	var mv *site.Move
	if _, err := m.st.UpdateSite(ctx, name, func(cur *site.Site) error {
		if kept := m.moves[cur.Metadata.UID]; kept != nil && cur.Move == nil {
			c := *kept
			cur.Move = &c
		}
		fn(cur)
		uid, mv = cur.Metadata.UID, cur.Move
		return nil
	}); err != nil {
		return err
	}
	if !m.probe {
		m.probe = true
		after, err := m.st.GetSite(ctx, name)
		if err != nil {
			return err
		}
		if after.Move == nil && mv != nil {
			m.moves = map[string]*site.Move{} // the store does not keep moves (yet)
		}
	}
	if m.moves != nil && mv != nil {
		c := *mv
		m.moves[uid] = &c
	}
	return nil
}

func (m *moveSites) overlay(s *site.Site) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.moves == nil {
		return
	}
	if mv := m.moves[s.Metadata.UID]; mv != nil {
		c := *mv
		s.Move = &c
	}
}

func (m *moveSites) get(ctx context.Context, name string) (*site.Site, error) {
	s, err := m.st.GetSite(ctx, name)
	if err != nil {
		return nil, err
	}
	m.overlay(s)
	return s, nil
}

func (m *moveSites) ListSites(ctx context.Context, shardName string) ([]site.Site, error) {
	all, err := m.from.ListSites(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []site.Site
	for _, s := range all {
		m.overlay(&s)
		for _, n := range s.Shards() {
			if n == shardName {
				out = append(out, s)
				break
			}
		}
	}
	return out, nil
}

func (m *moveSites) UpdateStatus(ctx context.Context, name, uid string, fn func(*site.Status)) error {
	return m.from.UpdateStatus(ctx, name, uid, fn)
}

func (m *moveSites) UpdateMove(ctx context.Context, name, uid string, fn func(*site.Move)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.moves == nil {
		return m.from.UpdateMove(ctx, name, uid, fn)
	}
	cur := m.moves[uid]
	if cur == nil {
		return nil
	}
	var next *site.Move
	_, err := m.st.UpdateSite(ctx, name, func(s *site.Site) error {
		if s.Metadata.UID != uid {
			return errSkip
		}
		c := *cur
		s.Move = &c
		fn(s.Move)
		site.AdvanceMove(s, time.Now().UTC())
		next = s.Move
		return nil
	})
	if errors.Is(err, errSkip) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	m.moves[uid] = next
	return nil
}

var errSkip = errors.New("skip")

func (m *moveSites) Finalize(ctx context.Context, name, uid string) error {
	return m.from.Finalize(ctx, name, uid)
}

var publicRef = regexp.MustCompile(`, ref ([0-9a-f]{8})\)$`)

// detail returns what the shard logged for a short public message (a site
// condition, move or job error: "… failed (details in the log of shard S,
// ref R)"): the log lines with that reference, so tests can check the
// cause viewers are not shown.
func (c *cluster) detail(public string) string {
	c.t.Helper()
	m := publicRef.FindStringSubmatch(public)
	if m == nil {
		return public
	}
	var out []string
	for _, line := range strings.Split(c.logs.String(), "\n") {
		if strings.Contains(line, "ref="+m[1]) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
