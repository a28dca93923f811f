package purge

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/edge"
)

// TestRotationUnderPurges rotates the purge secret while "sites" purge
// concurrently through an edge with the keyring middleware, each with the
// key its wp-config.php holds (a shard's keyring, a separate instance on
// the same files as a separate process would have, refreshes them one by
// one as convergence would). No purge fails during the overlap; after the
// rotation is finished every old key is refused and every new one works.
func TestRotationUnderPurges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "purge-secret")
	edgeRing, err := OpenKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	// The edge looks at the files every second of its clock, or when a
	// key it does not know comes.
	var edgeNow atomic.Int64
	edgeRing.CheckEvery, edgeRing.Clock = time.Second, func() time.Time { return time.Unix(edgeNow.Load(), 0) }
	shardRing, err := OpenKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	shardRing.CheckEvery = time.Nanosecond
	srv := edge.New(edge.Config{Middlewares: []edge.Middleware{KeyringMiddleware(edgeRing, &recorder{}, nil), teapot}})
	dir := t.TempDir()
	sites := []string{"a.localhost", "b.localhost", "c.localhost", "d.localhost"}
	var routes []edge.Route
	for _, s := range sites {
		routes = append(routes, edge.Route{Host: s, Site: s, Docroot: dir, Endpoint: "unix:" + filepath.Join(dir, "none.sock"), State: edge.Serving})
	}
	srv.SetTable(edge.NewTable(routes))
	var mu sync.Mutex
	wpConfig := map[string]string{} // the key each site's wp-config.php holds
	converge := func(s string) { mu.Lock(); wpConfig[s] = shardRing.Key(s); mu.Unlock() }
	for _, s := range sites {
		converge(s)
	}
	purge := func(s, key string) int {
		req := httptest.NewRequest("POST", "http://"+s+Path, strings.NewReader(`{"all":true}`))
		req.RemoteAddr = "127.0.0.1:4444"
		req.Header.Set(KeyHeader, key)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		return w.Code
	}
	var ok, failed atomic.Int64
	var done [4]atomic.Int64 // purges per worker
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				s := sites[n%len(sites)]
				mu.Lock()
				key := wpConfig[s]
				mu.Unlock()
				if code := purge(s, key); code == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
				done[i].Add(1)
			}
		}()
	}
	waitMore := func(n int64) {
		want := ok.Load() + n
		for ok.Load() < want && failed.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	waitMore(50)
	old := map[string]string{}
	for _, s := range sites {
		old[s] = wpConfig[s]
	}
	if err := Rotate(path); err != nil {
		t.Fatal(err)
	}
	if st, _ := State(path); !st.InFlight {
		t.Error("no rotation in flight after Rotate")
	}
	if err := Rotate(path); err == nil {
		t.Error("a second Rotate during the overlap succeeded")
	}
	waitMore(50)
	for _, s := range sites {
		converge(s) // the shard rewrites each site's wp-config.php
		waitMore(20)
	}
	// Every purge that began with an old key has ended (the overlap must
	// outlast them: in production, the shards' full resync).
	var seen [4]int64
	for i := range done {
		seen[i] = done[i].Load()
	}
	for i := range done {
		for done[i].Load() <= seen[i]+1 && failed.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if err := Finish(path); err != nil {
		t.Fatal(err)
	}
	waitMore(50)
	edgeNow.Add(2) // the edge's next look: the previous secret is gone
	close(stop)
	wg.Wait()
	t.Logf("%d purges succeeded, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d purges failed during the rotation", failed.Load())
	}
	for _, s := range sites {
		if wpConfig[s] == old[s] {
			t.Errorf("%s: the key did not change", s)
		}
		if code := purge(s, old[s]); code != 403 {
			t.Errorf("%s: old key after the rotation finished: %d, want 403", s, code)
		}
		if code := purge(s, wpConfig[s]); code != 200 {
			t.Errorf("%s: new key: %d", s, code)
		}
	}
	if st, _ := State(path); st.InFlight {
		t.Error("rotation still in flight after Finish")
	}
	if err := Finish(path); err != nil {
		t.Errorf("Finish again: %v", err)
	}
}

// TestRotateInterrupted: a Rotate that stopped after keeping the previous
// secret (before writing the new one) is completed by the next Rotate.
func TestRotateInterrupted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "purge-secret")
	first, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, path+PrevSuffix); err != nil { // what the crash left
		t.Fatal(err)
	}
	if err := Rotate(path); err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(path)
	prev, _ := os.ReadFile(path + PrevSuffix)
	if !bytes.Equal(prev, first) || bytes.Equal(cur, first) || len(cur) != SecretBytes {
		t.Fatalf("after the completed rotation: prev is the first secret %v, current is new %v", bytes.Equal(prev, first), !bytes.Equal(cur, first))
	}
}

// TestKeyringWindow: without a Finish, the previous secret stops being
// accepted once the current one is older than the window.
func TestKeyringWindow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "purge-secret")
	k, err := OpenKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := k.Key("a.localhost")
	if err := Rotate(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	now := fi.ModTime().Add(time.Minute)
	k.Window, k.Clock = time.Hour, func() time.Time { return now }
	if !k.Check("a.localhost", oldKey) || !k.Check("a.localhost", k.Key("a.localhost")) {
		t.Fatal("within the window: old or new key refused")
	}
	if k.Check("b.localhost", oldKey) {
		t.Fatal("one site's old key accepted for another")
	}
	now = now.Add(time.Hour)
	if k.Check("a.localhost", oldKey) {
		t.Error("the old key is accepted after the window")
	}
	if !k.Check("a.localhost", k.Key("a.localhost")) {
		t.Error("the new key is refused after the window")
	}
}
