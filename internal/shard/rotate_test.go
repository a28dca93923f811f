package shard_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/store"
)

// load sends GET requests for host through the edge from several
// goroutines until stop is called, and counts answers that are not 200
// (WordPress answers 500 "Error establishing a database connection" when
// its account is refused) and transport errors.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firstErr   string
	stop       func()
}

func (c *cluster) startLoad(host string, workers int) *load {
	l := &load{}
	ctx, cancel := context.WithCancel(c.ctx)
	var wg sync.WaitGroup
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", c.srv.URL+"/", nil)
				req.Host = host + ":" + c.port
				resp, err := client.Do(req)
				if ctx.Err() != nil {
					return
				}
				var msg string
				if err != nil {
					msg = err.Error()
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						msg = resp.Status + ": " + string(b[:min(len(b), 300)])
					}
				}
				if msg == "" {
					l.ok.Add(1)
					continue
				}
				l.failed.Add(1)
				l.mu.Lock()
				if l.firstErr == "" {
					l.firstErr = msg
				}
				l.mu.Unlock()
			}
		}()
	}
	l.stop = func() { cancel(); wg.Wait() }
	return l
}

// waitMore waits until n more requests succeeded (or some failed).
func (l *load) waitMore(ctx context.Context, n int64) {
	want := l.ok.Load() + n
	for l.ok.Load() < want && l.failed.Load() == 0 && sleepCtx(ctx, 20) == nil {
	}
}

func (l *load) check(t *testing.T, what string) {
	t.Helper()
	l.stop()
	t.Logf("%s: %d requests succeeded, %d failed", what, l.ok.Load(), l.failed.Load())
	if l.failed.Load() > 0 {
		t.Errorf("%s: %d of %d requests failed; first: %s", what, l.failed.Load(), l.ok.Load()+l.failed.Load(), l.firstErr)
	}
	if l.ok.Load() == 0 {
		t.Errorf("%s: no request was made", what)
	}
}

type siteSecrets struct {
	DBPassword string `json:"db_password"`
	DBSlot     string `json:"db_slot"`
}

func readSiteSecrets(t *testing.T, dir string) siteSecrets {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s siteSecrets
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// canConnect reports whether user/password opens a session on db.
func canConnect(ctx context.Context, sh *shard.Shard, user, password, db string) bool {
	conn, err := sh.DB().OpenAs(user, password, db)
	if err != nil {
		return false
	}
	defer conn.Close()
	return conn.PingContext(ctx) == nil
}

// TestRotateDBPasswordUnderLoad rotates a serving site's database password
// twice (to the second account and back) while requests run against it:
// none may fail, the old account must be gone (its password opens
// nothing), and the site must serve with the new one.
func TestRotateDBPasswordUnderLoad(t *testing.T) {
	c := newCluster(t)
	sh := c.start("local")
	const host = "rotate.localhost"
	const uid = "uid-rotate-db"
	st := c.create(host, uid, "local", "Rotating", adminFor(t))
	n := sh.NamesFor(uid)
	l := c.startLoad(host, 4)
	l.waitMore(c.ctx, 20)
	wantUsers := []string{n.DBUser + "_b", n.DBUser}
	for i, want := range wantUsers {
		before := readSiteSecrets(t, n.Dir)
		oldUser := n.DBUser
		if before.DBSlot == "b" {
			oldUser = n.DBUser + "_b"
		}
		res, err := sh.RotateSecret(c.ctx, st, store.SecretDBPassword, nil)
		if err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
		if res.DBUser != want {
			t.Errorf("rotation %d: account %s, want %s", i+1, res.DBUser, want)
		}
		after := readSiteSecrets(t, n.Dir)
		if after.DBPassword == before.DBPassword {
			t.Errorf("rotation %d kept the password", i+1)
		}
		if ok, _ := sh.DB().UserExists(c.ctx, oldUser); ok {
			t.Errorf("rotation %d: old account %s still exists", i+1, oldUser)
		}
		if canConnect(c.ctx, sh, oldUser, before.DBPassword, n.DB) {
			t.Errorf("rotation %d: the old password still opens a session", i+1)
		}
		if !canConnect(c.ctx, sh, want, after.DBPassword, n.DB) {
			t.Errorf("rotation %d: the new account does not open a session", i+1)
		}
		cfg, _ := os.ReadFile(filepath.Join(n.Docroot, "wp-config.php"))
		if !strings.Contains(string(cfg), "'"+want+"'") || !strings.Contains(string(cfg), after.DBPassword) {
			t.Errorf("rotation %d: wp-config.php does not name the new account", i+1)
		}
		if s, _ := sh.SiteSecretsState(uid); s.Rotation != "" || s.DBUser != want {
			t.Errorf("rotation %d: state %+v", i+1, s)
		}
	}
	l.check(t, "during two DB password rotations")
	// Convergence keeps the rotated account (it must not go back to the
	// first one's password or name).
	if err := c.converge(); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := c.request("GET", host, "/", nil, nil); code != 200 {
		t.Fatalf("after convergence: %d", code)
	}
	c.deleteAll()
	for _, u := range []string{n.DBUser, n.DBUser + "_b"} {
		if ok, _ := sh.DB().UserExists(c.ctx, u); ok {
			t.Errorf("deleting the site left account %s", u)
		}
	}
}

// TestRotateDBPasswordResumes interrupts a rotation at each of its steps
// (as a kill -9 would) with requests running: the site keeps serving, and
// running the rotation again finishes it.
func TestRotateDBPasswordResumes(t *testing.T) {
	c := newCluster(t)
	sh := c.start("local")
	for i, point := range []string{"rotate-created", "rotate-switching", "rotate-dropped"} {
		host := "resume" + string(rune('a'+i)) + ".localhost"
		uid := "uid-resume-" + point
		st := c.create(host, uid, "local", "Resuming", adminFor(t))
		n := sh.NamesFor(uid)
		before := readSiteSecrets(t, n.Dir)
		l := c.startLoad(host, 2)
		l.waitMore(c.ctx, 10)
		crash := errors.New("crash at " + point)
		shard.SetCrashAt(sh, func(p string) error {
			if p == point {
				return crash
			}
			return nil
		})
		if _, err := sh.RotateSecret(c.ctx, st, store.SecretDBPassword, nil); !errors.Is(err, crash) {
			t.Fatalf("%s: rotation = %v, want the crash", point, err)
		}
		shard.SetCrashAt(sh, nil)
		if s, _ := sh.SiteSecretsState(uid); s.Rotation == "" {
			t.Errorf("%s: no rotation recorded in flight", point)
		}
		// A convergence pass meanwhile must not break the site either.
		if err := c.converge(); err != nil {
			t.Fatalf("%s: converge: %v", point, err)
		}
		res, err := sh.RotateSecret(c.ctx, st, store.SecretDBPassword, nil)
		if err != nil {
			t.Fatalf("%s: resumed rotation: %v", point, err)
		}
		l.check(t, point)
		if res.DBUser != n.DBUser+"_b" {
			t.Errorf("%s: resumed rotation ended on %s (a second rotation instead of the first's end?)", point, res.DBUser)
		}
		if ok, _ := sh.DB().UserExists(c.ctx, n.DBUser); ok {
			t.Errorf("%s: the old account survived", point)
		}
		if canConnect(c.ctx, sh, n.DBUser, before.DBPassword, n.DB) {
			t.Errorf("%s: the old password still opens a session", point)
		}
		if s, _ := sh.SiteSecretsState(uid); s.Rotation != "" {
			t.Errorf("%s: rotation still in flight: %+v", point, s)
		}
	}
	c.deleteAll()
}

// TestRotateSalts gives a site new salts under load: no request fails, and
// a logged-in admin's cookies stop working.
func TestRotateSalts(t *testing.T) {
	c := newCluster(t)
	sh := c.start("local")
	const host = "salts.localhost"
	st := c.create(host, "uid-rotate-salts", "local", "Salty", adminFor(t))
	cookies := c.login(host)
	if !c.dashboard(host, cookies) {
		t.Fatal("the admin's cookies do not reach the dashboard before the rotation")
	}
	l := c.startLoad(host, 4)
	l.waitMore(c.ctx, 20)
	if _, err := sh.RotateSecret(c.ctx, st, store.SecretSalts, nil); err != nil {
		t.Fatal(err)
	}
	l.waitMore(c.ctx, 50) // beyond OPcache's revalidation
	l.check(t, "during a salts rotation")
	// OPcache sees the new wp-config.php within its revalidation period.
	var still bool
	for i := 0; i < 50; i++ {
		if still = c.dashboard(host, cookies); !still {
			break
		}
		if err := sleepCtx(c.ctx, 100); err != nil {
			t.Fatal(err)
		}
	}
	if still {
		t.Error("the admin is still logged in after the salts rotation")
	}
	if !c.dashboard(host, c.login(host)) {
		t.Error("logging in again does not work after the salts rotation")
	}
	c.deleteAll()
}

func sleepCtx(ctx context.Context, ms int) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return nil
	}
}
