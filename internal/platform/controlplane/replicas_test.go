package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/postgres/pgtest"
)

var pg pgtest.Env

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type replica struct {
	name   string
	log    *syncBuffer
	cancel context.CancelFunc
	done   chan struct{}
	client *apiclient.Client
}

func (r *replica) count(msg string) int { return strings.Count(r.log.String(), msg) }

func startReplica(t *testing.T, name, dsn string) *replica {
	t.Helper()
	r := &replica{name: name, log: &syncBuffer{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	dir := t.TempDir()
	ready := make(chan string, 1)
	go func() {
		defer close(r.done)
		err := Run(ctx, Config{
			DataDir: dir, Store: dsn, APIAddr: "127.0.0.1:0", HeartbeatTimeout: 30 * time.Second,
			Logger: slog.New(slog.NewTextHandler(r.log, nil)),
			Ready:  func(url string) { ready <- url },
		})
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}()
	select {
	case <-ready:
	case <-r.done:
		t.Fatalf("%s stopped:\n%s", name, r.log)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start:\n%s", name, r.log)
	}
	cfg, err := apiclient.ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	r.client = apiclient.New(cfg.URL, cfg.Token)
	t.Cleanup(func() { r.cancel(); <-r.done })
	return r
}

// waitFor polls cond (bounded).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Two control planes on one PostgreSQL database: both serve the API, one
// leads; every site is placed exactly once, by the leader, whichever replica
// took the request; when the leader stops the other takes over.
func TestTwoServersSharePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	srv := pg.Server(t)
	name := pgtest.DatabaseFor(t.TempDir())
	if err := srv.CreateDatabase(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	dsn := srv.URL(name) // what an operator passes: --store postgres://…
	a := startReplica(t, "a", dsn)
	b := startReplica(t, "b", dsn)
	const leading = "leading the control plane's periodic work"
	waitFor(t, "a leader", func() bool { return a.count(leading)+b.count(leading) >= 1 })
	time.Sleep(time.Second) // room for a second leader to (wrongly) appear
	if n := a.count(leading) + b.count(leading); n != 1 {
		t.Fatalf("%d replicas lead:\na:\n%s\nb:\n%s", n, a.log, b.log)
	}
	leader, follower := a, b
	if b.count(leading) == 1 {
		leader, follower = b, a
	}

	// A shard registers through the follower and beats there.
	ctx := t.Context()
	tok, err := follower.client.CreateToken(ctx, apiclient.CreateTokenRequest{Name: "s1", Role: store.RoleShard, Subject: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	agent := apiclient.New(follower.client.BaseURL, tok.Secret)
	if _, err := agent.Register(ctx, apiclient.RegisterRequest{Capacity: 50}); err != nil {
		t.Fatal(err)
	}
	if err := agent.Heartbeat(ctx, store.Usage{}); err != nil {
		t.Fatal(err)
	}

	create := func(c *apiclient.Client, n, from int) {
		t.Helper()
		for i := range n {
			d := fmt.Sprintf("r%d.example.com", from+i)
			if _, err := c.CreateSite(ctx, apiclient.CreateSiteRequest{Domain: d, Title: d, AdminEmail: "o@example.com"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	placed := func(c *apiclient.Client, n, from int) bool {
		for i := range n {
			s, err := c.GetSite(ctx, fmt.Sprintf("r%d.example.com", from+i))
			if err != nil || s.Status.Shard != "s1" {
				return false
			}
		}
		return true
	}
	// Half the sites through each replica.
	create(follower.client, 5, 0)
	create(leader.client, 5, 5)
	waitFor(t, "10 sites placed", func() bool { return placed(follower.client, 10, 0) })
	const placedMsg = `msg="placed site"`
	if n, m := leader.count(placedMsg), follower.count(placedMsg); n != 10 || m != 0 {
		t.Fatalf("placements: leader %d, follower %d; want 10 and 0", n, m)
	}

	// The leader goes away; the follower takes over the periodic work.
	leader.cancel()
	<-leader.done
	waitFor(t, "the follower to lead", func() bool { return follower.count(leading) == 1 })
	if err := agent.Heartbeat(ctx, store.Usage{}); err != nil {
		t.Fatal(err)
	}
	create(follower.client, 3, 10)
	waitFor(t, "3 more sites placed", func() bool { return placed(follower.client, 3, 10) })
	if n := follower.count(placedMsg); n != 3 {
		t.Fatalf("the new leader placed %d sites, want 3:\n%s", n, follower.log)
	}
}
