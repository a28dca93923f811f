package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/shardlayout"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

const (
	adminSecret = "admin-secret"
	s1Secret    = "s1-secret"
	s2Secret    = "s2-secret"
	s9Secret    = "s9-secret"
	edgeSecret  = "edge-secret"
)

var created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// cp is a control plane: the real API over a real SQLite store, served on
// an address that survives restarts.
type cp struct {
	t     *testing.T
	store store.Store
	addr  string
	srv   *httptest.Server
	// lists counts full lists of the agent's sites and of the routes.
	lists atomic.Int64
	// reports counts agent reports (PUT and POST under /v1/agent/sites/).
	reports atomic.Int64
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func newCP(t *testing.T) *cp {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, tok := range []store.Token{
		{ID: "tok-admin", Name: "admin", Role: store.RoleAdmin, Hash: hashOf(adminSecret), CreatedAt: created},
		{ID: "tok-s1", Name: "s1", Role: store.RoleShard, Subject: "s1", Hash: hashOf(s1Secret), CreatedAt: created},
		{ID: "tok-s2", Name: "s2", Role: store.RoleShard, Subject: "s2", Hash: hashOf(s2Secret), CreatedAt: created},
		{ID: "tok-s9", Name: "s9", Role: store.RoleShard, Subject: "s9", Hash: hashOf(s9Secret), CreatedAt: created},
		{ID: "tok-edge", Name: "edge", Role: store.RoleEdge, Hash: hashOf(edgeSecret), CreatedAt: created},
	} {
		if err := st.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"s1", "s2"} {
		if err := st.CreateShard(ctx, &store.Shard{Name: name, Phase: store.ShardReady, CreatedAt: created, Dir: "/srv/" + name}); err != nil {
			t.Fatal(err)
		}
	}
	c := &cp{t: t, store: st}
	c.start("127.0.0.1:0")
	t.Cleanup(c.stop)
	return c
}

// start serves a new API handler (a restarted control plane) on addr.
func (c *cp) start(addr string) {
	c.t.Helper()
	h := api.New(api.Config{Store: c.store, Placer: api.StaticPlacer("s1")})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "GET" && (r.URL.Path == "/v1/agent/sites" || r.URL.Path == "/v1/routes") && !r.URL.Query().Has("since"):
			c.lists.Add(1)
		case r.Method != "GET" && strings.HasPrefix(r.URL.Path, "/v1/agent/sites/"):
			c.reports.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	c.srv, c.addr = srv, ln.Addr().String()
}

// stop shuts the control plane down, cutting long polls.
func (c *cp) stop() {
	if c.srv == nil {
		return
	}
	c.srv.CloseClientConnections()
	c.srv.Close()
	c.srv = nil
}

func (c *cp) restart() {
	c.stop()
	c.start(c.addr)
}

func (c *cp) client(secret string) *apiclient.Client {
	return apiclient.New("http://"+c.addr, secret)
}

// place stores a Ready site on shard.
func (c *cp) place(name, shard string) *site.Site {
	c.t.Helper()
	ctx := context.Background()
	s := &site.Site{
		Metadata: site.Metadata{Name: name, UID: "uid-" + name, CreatedAt: created},
		Spec:     site.Spec{Domain: name, Title: "T", Plan: "basic", Admin: site.Admin{User: "admin", Email: "me@example.com", PasswordHash: "$2a$10$x"}},
		Status:   site.Status{Phase: site.PhaseReady, Shard: shard},
	}
	if err := c.store.CreateSite(ctx, s); err != nil {
		c.t.Fatal(err)
	}
	got, err := c.store.GetSite(ctx, name)
	if err != nil {
		c.t.Fatal(err)
	}
	return got
}

func (c *cp) update(name string, fn func(*site.Site)) {
	c.t.Helper()
	if _, err := c.store.UpdateSite(context.Background(), name, func(s *site.Site) error { fn(s); return nil }); err != nil {
		c.t.Fatal(err)
	}
}

// eventually polls cond until it holds (or fails the test after a bound
// that only a hang reaches).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runSites starts Sites for shard with the given token; wakes counts Wake
// calls.
func runSites(t *testing.T, c *cp, shard, secret string) (*Sites, *atomic.Int64) {
	t.Helper()
	var wakes atomic.Int64
	s := NewSites(SitesConfig{Client: c.client(secret), Shard: shard, Wake: func() { wakes.Add(1) },
		Wait: 2 * time.Second, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, &wakes
}

func names(t *testing.T, s *Sites, shard string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	list, err := s.ListSites(ctx, shard)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, st := range list {
		out = append(out, st.Metadata.Name)
	}
	return strings.Join(out, ",")
}

func TestSitesListAndFollow(t *testing.T) {
	c := newCP(t)
	c.place("a.com", "s1")
	c.place("other.com", "s2")
	s, wakes := runSites(t, c, "s1", s1Secret)
	if got := names(t, s, "s1"); got != "a.com" {
		t.Fatalf("first list = %q", got)
	}
	if wakes.Load() == 0 {
		t.Error("the first list did not wake the shard")
	}
	if _, err := s.ListSites(context.Background(), "s2"); err == nil {
		t.Error("ListSites for another shard worked")
	}

	w := wakes.Load()
	c.place("b.com", "s1")
	eventually(t, "b.com", func() bool { return names(t, s, "s1") == "a.com,b.com" })
	if wakes.Load() == w {
		t.Error("a new site did not wake the shard")
	}
	// A site moving in is held by both shards; a deleted site goes.
	c.update("other.com", func(st *site.Site) {
		st.Move = &site.Move{ID: "m1", Source: "s2", Target: "s1", Phase: site.MoveExporting, RequestedAt: created}
	})
	eventually(t, "other.com moving in", func() bool { return names(t, s, "s1") == "a.com,b.com,other.com" })
	if err := c.store.DeleteSite(context.Background(), "b.com"); err != nil {
		t.Fatal(err)
	}
	// The move aborted: other.com leaves s1 (a tombstone, not a deletion).
	c.update("other.com", func(st *site.Site) { st.Move.Phase = site.MoveAborted })
	eventually(t, "b.com and other.com gone", func() bool { return names(t, s, "s1") == "a.com" })
	if n := c.lists.Load(); n != 1 {
		t.Errorf("%d full lists, want 1 (the watch follows changes)", n)
	}
}

func TestSitesResumeAfterRestart(t *testing.T) {
	c := newCP(t)
	c.place("a.com", "s1")
	s, _ := runSites(t, c, "s1", s1Secret)
	if got := names(t, s, "s1"); got != "a.com" {
		t.Fatalf("first list = %q", got)
	}
	// While the control plane is down, things change.
	c.stop()
	c.place("c.com", "s1")
	if err := c.store.DeleteSite(context.Background(), "a.com"); err != nil {
		t.Fatal(err)
	}
	c.start(c.addr)
	eventually(t, "the changes made while down", func() bool { return names(t, s, "s1") == "c.com" })
	if n := c.lists.Load(); n != 1 {
		t.Errorf("%d full lists, want 1 (the watch resumes from its revision)", n)
	}
}

func TestSitesRelistWhenExpired(t *testing.T) {
	c := newCP(t)
	c.place("a.com", "s1")
	s, _ := runSites(t, c, "s1", s1Secret)
	if got := names(t, s, "s1"); got != "a.com" {
		t.Fatalf("first list = %q", got)
	}
	c.stop()
	if err := c.store.DeleteSite(context.Background(), "a.com"); err != nil {
		t.Fatal(err)
	}
	c.place("d.com", "s1")
	rev, err := c.store.Changes(context.Background(), 1<<62, store.ChangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The tombstone of a.com is pruned: the watch's revision is too old.
	if _, err := c.store.PruneTombstones(context.Background(), rev.Revision); err != nil {
		t.Fatal(err)
	}
	c.start(c.addr)
	eventually(t, "the re-list", func() bool { return names(t, s, "s1") == "d.com" })
	if n := c.lists.Load(); n != 2 {
		t.Errorf("%d full lists, want 2 (410 makes the agent list again)", n)
	}
}

func TestSitesReports(t *testing.T) {
	c := newCP(t)
	ctx := context.Background()
	a := c.place("a.com", "s1")
	c.place("b.com", "s2")
	s1, _ := runSites(t, c, "s1", s1Secret)
	s2, _ := runSites(t, c, "s2", s2Secret)
	names(t, s1, "s1")
	names(t, s2, "s2")

	// A status change is sent; the same status again is not.
	setSuspended := func(st *site.Status) { st.Phase = site.PhaseSuspended }
	if err := s1.UpdateStatus(ctx, "a.com", a.Metadata.UID, setSuspended); err != nil {
		t.Fatal(err)
	}
	got, _ := c.store.GetSite(ctx, "a.com")
	if got.Status.Phase != site.PhaseSuspended || got.Status.Shard != "s1" {
		t.Fatalf("status after report = %+v", got.Status)
	}
	n := c.reports.Load()
	if err := s1.UpdateStatus(ctx, "a.com", a.Metadata.UID, setSuspended); err != nil {
		t.Fatal(err)
	}
	if err := s1.UpdateStatus(ctx, "a.com", "another-uid", func(st *site.Status) { st.Phase = site.PhaseFailed }); err != nil {
		t.Fatal(err)
	}
	if c.reports.Load() != n {
		t.Errorf("a no-op (or other-UID) report was sent")
	}

	// s2 cannot touch s1's site: its cache does not have it, and the API
	// refuses it when asked directly.
	if err := s2.UpdateStatus(ctx, "a.com", a.Metadata.UID, func(st *site.Status) { st.Phase = site.PhaseFailed }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client(s2Secret).ReportStatus(ctx, "a.com", a.Metadata.UID, site.Status{Phase: site.PhaseFailed}); !apiclient.IsConflict(err) {
		t.Fatalf("s2 reporting a.com: %v", err)
	}
	if err := c.client(s2Secret).Finalize(ctx, "a.com", a.Metadata.UID); !apiclient.IsConflict(err) {
		t.Fatalf("s2 finalizing a.com: %v", err)
	}
	got, _ = c.store.GetSite(ctx, "a.com")
	if got.Status.Phase != site.PhaseSuspended {
		t.Fatalf("s2 changed a.com: %+v", got.Status)
	}

	// Move reports: the source's report keeps only the source's fields.
	c.update("a.com", func(st *site.Site) {
		st.Move = &site.Move{ID: "m1", Source: "s1", Target: "s2", Phase: site.MoveExporting, RequestedAt: created}
	})
	eventually(t, "the move reaching s1", func() bool {
		l, _ := s1.ListSites(ctx, "s1")
		return len(l) == 1 && l[0].Move != nil
	})
	t1 := created.Add(time.Second)
	if err := s1.UpdateMove(ctx, "a.com", a.Metadata.UID, func(m *site.Move) {
		m.FreezeStarted, m.Exported, m.Artifact = &t1, &t1, "art"
		m.Imported, m.TargetEndpoint = &t1, "tcp:x:1" // not the source's to report
	}); err != nil {
		t.Fatal(err)
	}
	got, _ = c.store.GetSite(ctx, "a.com")
	if m := got.Move; m.Phase != site.MoveImporting || m.Exported == nil || m.Artifact != "art" || m.Imported != nil || m.TargetEndpoint != "" {
		t.Fatalf("move after the source's report = %+v", m)
	}

	// The target sees the site moving in and reports its import: the switch.
	eventually(t, "the move reaching s2", func() bool { return names(t, s2, "s2") == "a.com,b.com" })
	eventually(t, "s2 seeing the export", func() bool {
		l, _ := s2.ListSites(ctx, "s2")
		return l[0].Move != nil && l[0].Move.Phase == site.MoveImporting
	})
	// The target may report only where the site lives by its registered
	// layout: not a TCP port, not a docroot of its choosing.
	s2Layout := shardlayout.Layout{Name: "s2", Dir: "/srv/s2"}
	for _, bad := range [][2]string{{"tcp:s2.internal:9100", ""}, {"", "/"}, {"unix:/srv/s1/php/run/x.sock", ""}} {
		_, err := c.client(s2Secret).ReportMove(ctx, "a.com", a.Metadata.UID, site.Move{ID: "m1", Imported: &t1, TargetEndpoint: bad[0], TargetDocroot: bad[1]})
		if err == nil || !strings.Contains(err.Error(), "422") && !strings.Contains(err.Error(), "not the site's") {
			t.Errorf("s2 reporting endpoint %q docroot %q: %v", bad[0], bad[1], err)
		}
	}
	if err := s2.UpdateMove(ctx, "a.com", a.Metadata.UID, func(m *site.Move) {
		m.Imported, m.TargetEndpoint, m.TargetDocroot = &t1, s2Layout.Endpoint(a.Metadata.UID), s2Layout.Site(a.Metadata.UID).Docroot
	}); err != nil {
		t.Fatal(err)
	}
	got, _ = c.store.GetSite(ctx, "a.com")
	if got.Status.Shard != "s2" || got.Move.Phase != site.MoveCleaningUp || got.Status.Endpoint != s2Layout.Endpoint(a.Metadata.UID) {
		t.Fatalf("after the import: status %+v move %+v", got.Status, got.Move)
	}
	// s1's status reports are now refused (and ignored by Sites).
	eventually(t, "s1 seeing the switch", func() bool {
		l, _ := s1.ListSites(ctx, "s1")
		return len(l) == 1 && l[0].Status.Shard == "s2"
	})
	if err := s1.UpdateStatus(ctx, "a.com", a.Metadata.UID, func(st *site.Status) { st.Phase = site.PhaseFailed }); err != nil {
		t.Fatal(err)
	}
	if err := s1.UpdateMove(ctx, "a.com", a.Metadata.UID, func(m *site.Move) { m.CleanedUp = &t1 }); err != nil {
		t.Fatal(err)
	}
	got, _ = c.store.GetSite(ctx, "a.com")
	if got.Move.Phase != site.MoveDone || got.Status.Phase != site.PhaseSuspended {
		t.Fatalf("after cleanup: status %+v move %+v", got.Status, got.Move)
	}
	eventually(t, "a.com leaving s1", func() bool { return names(t, s1, "s1") == "" })

	// Finalize removes a site whose deletion was requested.
	now := created
	c.update("b.com", func(st *site.Site) { st.Metadata.DeletionRequested = &now })
	eventually(t, "the deletion reaching s2", func() bool {
		l, _ := s2.ListSites(ctx, "s2")
		for _, st := range l {
			if st.Metadata.Name == "b.com" && st.Metadata.DeletionRequested != nil {
				return true
			}
		}
		return false
	})
	if err := s2.Finalize(ctx, "b.com", "uid-b.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.store.GetSite(ctx, "b.com"); err == nil {
		t.Fatal("b.com still stored")
	}
	if got := names(t, s2, "s2"); got != "a.com" {
		t.Errorf("s2 after finalize = %q", got)
	}
}

func TestRoutes(t *testing.T) {
	c := newCP(t)
	c.place("a.com", "s1")
	var mu sync.Mutex
	var last Snapshot
	calls := 0
	r := NewRoutes(RoutesConfig{Source: c.client(edgeSecret), Wait: 2 * time.Second, MinBackoff: 5 * time.Millisecond,
		OnChange: func(s Snapshot) { mu.Lock(); last, calls = s, calls+1; mu.Unlock() }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	snap := func() Snapshot { mu.Lock(); defer mu.Unlock(); return last }

	eventually(t, "the first snapshot", func() bool { return len(snap().Sites) == 1 && len(snap().Shards) == 2 })
	if snap().Sites[0].Spec.Admin.PasswordHash != "" {
		t.Error("the edge got the password hash")
	}
	c.place("b.com", "s2")
	eventually(t, "b.com", func() bool { return len(snap().Sites) == 2 })
	if _, err := c.store.UpdateShard(context.Background(), "s2", func(sh *store.Shard) error { sh.Phase = store.ShardUnhealthy; return nil }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "s2 unhealthy", func() bool { s := snap(); return len(s.Shards) == 2 && s.Shards[1].Phase == store.ShardUnhealthy })
	// A site leaving a shard stays in the table; a deleted one goes.
	c.update("a.com", func(st *site.Site) { st.Status.Shard = "s2" })
	if err := c.store.DeleteSite(context.Background(), "b.com"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b.com deleted", func() bool {
		s := snap()
		return len(s.Sites) == 1 && s.Sites[0].Metadata.Name == "a.com" && s.Sites[0].Status.Shard == "s2"
	})
	// A restart of the control plane resumes the watch.
	c.restart()
	c.place("e.com", "s1")
	eventually(t, "e.com after the restart", func() bool { return len(snap().Sites) == 2 })
	if n := c.lists.Load(); n != 1 {
		t.Errorf("%d full lists, want 1", n)
	}
}

func TestRegisterAndHeartbeat(t *testing.T) {
	c := newCP(t)
	ctx := context.Background()
	cl := c.client(s9Secret)
	req := apiclient.RegisterRequest{Capacity: 10, Labels: map[string]string{"zone": "b"}, AgentVersion: "test"}
	if err := beat(ctx, HeartbeatConfig{Client: cl}); !apiclient.IsNotFound(err) {
		t.Fatalf("heartbeat before registering: %v", err)
	}
	sh, err := Register(ctx, cl, req)
	if err != nil || sh.Name != "s9" || sh.Phase != store.ShardPending || sh.Capacity != 10 {
		t.Fatalf("Register = %+v, %v", sh, err)
	}
	usage := func(context.Context) (store.Usage, error) { return store.Usage{Sites: 4, Serving: 3}, nil }
	if err := beat(ctx, HeartbeatConfig{Client: cl, Usage: usage}); err != nil {
		t.Fatal(err)
	}
	got, err := c.store.GetShard(ctx, "s9")
	if err != nil || got.LastHeartbeat == nil || got.Usage.Sites != 4 {
		t.Fatalf("after a heartbeat: %+v, %v", got, err)
	}
	// The record is deleted: the next heartbeat registers again.
	if err := c.store.DeleteShard(ctx, "s9"); err != nil {
		t.Fatal(err)
	}
	if err := beat(ctx, HeartbeatConfig{Client: cl, Usage: usage, Register: &req}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.store.GetShard(ctx, "s9"); err != nil || got.Labels["zone"] != "b" || got.Usage.Sites != 4 {
		t.Fatalf("after re-registering: %+v, %v", got, err)
	}
	// The loop beats at once and stops with its context.
	ctx2, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Heartbeat(ctx2, HeartbeatConfig{Client: cl, Interval: time.Hour}) }()
	eventually(t, "a heartbeat from the loop", func() bool {
		got, _ := c.store.GetShard(ctx, "s9")
		return got.Usage.Sites == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// countingSource counts an in-process source's full lists; before, if set,
// runs once at the start of the first watch, on the watcher's goroutine.
type countingSource struct {
	RouteSource
	lists  atomic.Int32
	before func()
	once   sync.Once
}

func (c *countingSource) Routes(ctx context.Context) (*apiclient.RoutesResponse, error) {
	c.lists.Add(1)
	return c.RouteSource.Routes(ctx)
}

func (c *countingSource) WatchRoutes(ctx context.Context, since int64, wait time.Duration) (*apiclient.RoutesResponse, error) {
	if c.before != nil {
		c.once.Do(c.before)
	}
	return c.RouteSource.WatchRoutes(ctx, since, wait)
}

// follow runs a Routes over src until the test ends and returns its last
// snapshot's getter.
func follow(t *testing.T, src RouteSource) func() Snapshot {
	var mu sync.Mutex
	var last Snapshot
	r := NewRoutes(RoutesConfig{Source: src, Wait: 10 * time.Second, MinBackoff: 5 * time.Millisecond,
		OnChange: func(s Snapshot) { mu.Lock(); last = s; mu.Unlock() }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return func() Snapshot { mu.Lock(); defer mu.Unlock(); return last }
}

// The edge inside `aipress up` follows the store through api.RouteSource
// with the same watch: sites as an edge sees them, deletions, shard
// phases, and a revision whose tombstones were pruned makes it list again.
func TestRoutesFromStore(t *testing.T) {
	c := newCP(t)
	ctx := context.Background()
	c.place("a.com", "s1")
	hub := api.NewHub(c.store, nil)
	src := &countingSource{RouteSource: api.RouteSource{Store: c.store, Hub: hub}}
	snap := follow(t, src)
	eventually(t, "the first snapshot", func() bool { return len(snap().Sites) == 1 && len(snap().Shards) == 2 })
	if snap().Sites[0].Spec.Admin.PasswordHash != "" {
		t.Error("the edge got the password hash")
	}
	c.place("b.com", "s2")
	hub.Notify()
	eventually(t, "b.com", func() bool { return len(snap().Sites) == 2 })
	if _, err := c.store.UpdateShard(ctx, "s2", func(sh *store.Shard) error { sh.Phase = store.ShardUnhealthy; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := c.store.DeleteSite(ctx, "a.com"); err != nil {
		t.Fatal(err)
	}
	hub.Notify()
	eventually(t, "a.com deleted, s2 unhealthy", func() bool {
		s := snap()
		return len(s.Sites) == 1 && s.Sites[0].Metadata.Name == "b.com" && s.Shards[1].Phase == store.ShardUnhealthy
	})
	if n := src.lists.Load(); n != 1 {
		t.Errorf("%d full lists, want 1", n)
	}

	// Another watcher lists; before its first watch, a site is created,
	// one deleted and the tombstones pruned past its revision: the watch
	// has expired and it lists again.
	src2 := &countingSource{RouteSource: src.RouteSource, before: func() {
		c.place("c.com", "s1")
		if err := c.store.DeleteSite(ctx, "b.com"); err != nil {
			t.Error(err)
		}
		head, err := c.store.Changes(ctx, math.MaxInt64, store.ChangeOptions{Limit: 1})
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := c.store.PruneTombstones(ctx, head.Revision); err != nil {
			t.Error(err)
		}
	}}
	snap2 := follow(t, src2)
	eventually(t, "c.com alone after listing again", func() bool {
		s := snap2()
		return len(s.Sites) == 1 && s.Sites[0].Metadata.Name == "c.com"
	})
	if n := src2.lists.Load(); n != 2 {
		t.Errorf("%d full lists, want 2", n)
	}
}

// TestRoutesListStreamed: GET /v1/routes without since is streamed page by
// page (store.MaxLimit sites a page) and decoded site by site; what the
// edge gets over the API is exactly what the store source lists, across
// page boundaries, without password hashes.
func TestRoutesListStreamed(t *testing.T) {
	c := newCP(t)
	ctx := context.Background()
	n := 2*store.MaxLimit + 7
	for i := range n {
		shard := "s1"
		if i%3 == 0 {
			shard = "s2"
		}
		name := fmt.Sprintf("site-%05d.com", i)
		c.place(name, shard)
		if i%5 != 0 {
			continue
		}
		// Every field the edge gets, set on some sites (the compact
		// encoding leaves zero values out, never set ones).
		c.update(name, func(st *site.Site) {
			del := created.Add(time.Minute)
			st.Metadata.DeletionRequested = &del
			st.Spec.Suspended, st.Spec.HTTPSRedirect = true, true
			st.Spec.Cache.TTLSeconds = 60
			st.Spec.WAF = site.WAF{Mode: site.WAFBlock, ParanoiaLevel: 2}
			st.Status.Endpoint, st.Status.Docroot = "unix:/run/"+name+".sock", "/srv/"+name
			st.Status.Conditions = []site.Condition{{Type: site.CondMaintenance, Status: "True", Reason: "Update", LastTransitionTime: created}}
			st.Move = &site.Move{ID: "mv-" + name, Source: "s1", Target: "s2", Phase: site.MoveCopying, RequestedAt: created}
		})
	}
	got, err := c.client(edgeSecret).Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, err := api.RouteSource{Store: c.store}.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Sites) != n || got.Revision != want.Revision || got.More {
		t.Fatalf("routes: %d sites, revision %d, more %v; want %d sites, revision %d", len(got.Sites), got.Revision, got.More, n, want.Revision)
	}
	wj, _ := json.Marshal(want)
	gj, _ := json.Marshal(got)
	if string(wj) != string(gj) {
		t.Errorf("streamed routes differ from the store's:\nwant %.400s…\ngot  %.400s…", wj, gj)
	}
	for i := range got.Sites {
		if got.Sites[i].Spec.Admin.PasswordHash != "" {
			t.Fatalf("%s: the edge got the password hash", got.Sites[i].Metadata.Name)
		}
	}
}
