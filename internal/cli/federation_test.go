package cli

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// addShards stores Ready shards local (cordoned if asked) and s2.
func addShards(t *testing.T, st store.Store) {
	t.Helper()
	beat := cliNow.Add(-10 * time.Second)
	for _, sh := range []store.Shard{
		{Name: "local", Phase: store.ShardReady, Capacity: 20, Labels: map[string]string{"zone": "a", "tier": "gold"}, CreatedAt: created},
		{Name: "s2", Phase: store.ShardReady, CreatedAt: created},
	} {
		if err := st.CreateShard(context.Background(), &sh); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Heartbeat(context.Background(), "local", beat, store.Usage{Sites: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestShardCommands(t *testing.T) {
	h := newHarness(t)
	addShards(t, h.store)
	if _, _, err := h.run(t, "site", "create", "blog.localhost", "--title", "T", "--admin-email", "me@example.com", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args []string
		want string // exact stdout, or a substring when prefixed with "~"
	}{
		{[]string{"shard", "list"}, `NAME    PHASE   SITES/CAPACITY   CORDONED   DRAINING   LABELS             LAST-HEARTBEAT
local   Ready   1/20             no         no         tier=gold,zone=a   10s ago
s2      Ready   0/50             no         no         -                  never
`},
		{[]string{"shard", "get", "local", "-o", "json"}, `~"sites": 1`},
		{[]string{"shard", "cordon", "s2"}, "~s2     Ready   0/50             yes        no"},
		{[]string{"shard", "drain", "s2", "-o", "json"}, `~"draining": true`},
		{[]string{"shard", "uncordon", "s2", "-o", "yaml"}, "~cordoned: false\n"},
		{[]string{"shard", "delete", "s2"}, "shard s2 deleted\n"},
		{[]string{"shard", "list", "-o", "json"}, `~"name": "local"`},
	}
	for _, s := range steps {
		out, stderr, err := h.run(t, s.args...)
		if err != nil {
			t.Fatalf("%v: %v (stderr %q)", s.args, err, stderr)
		}
		if sub, ok := strings.CutPrefix(s.want, "~"); ok && !strings.Contains(out, sub) || !ok && out != s.want {
			t.Errorf("%v:\n%s\nwant %q", s.args, out, s.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"shard", "delete", "local"}, "still holds sites"},
		{[]string{"shard", "get", "nope"}, `shard "nope" not found`},
		{[]string{"shard", "token", "create", "Bad_Name"}, "subject"},
	} {
		if _, _, err := h.run(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestTokenCommands(t *testing.T) {
	h := newHarness(t)
	out, _, err := h.run(t, "shard", "token", "create", "s3")
	if err != nil || !strings.Contains(out, "(role shard) created.\nToken: aip_") || !strings.Contains(out, "shown only once") {
		t.Fatalf("shard token create: %v\n%s", err, out)
	}
	out, _, err = h.run(t, "edge", "token", "create", "edge-1", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ ID, Role, Token string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Role != "edge" || !strings.HasPrefix(tok.Token, "aip_") {
		t.Fatalf("edge token create -o json: %v\n%s", err, out)
	}
	// The new token works, and only for its routes.
	h.env[EnvToken] = tok.Token
	if _, _, err := h.run(t, "site", "list"); err == nil || !strings.Contains(err.Error(), "may not perform site.list") {
		t.Errorf("edge token listing sites: %v", err)
	}
	h.env[EnvToken] = adminSecret

	out, _, err = h.run(t, "token", "list")
	if err != nil || !strings.Contains(out, "ID") || !regexp.MustCompile(`shard\s+-\s+s3\b`).MatchString(out) || !strings.Contains(out, tok.ID) || !strings.Contains(out, "edge-1") {
		t.Fatalf("token list: %v\n%s", err, out)
	}
	if out, _, err := h.run(t, "token", "delete", tok.ID); err != nil || out != "token "+tok.ID+" revoked\n" {
		t.Fatalf("token delete: %v %q", err, out)
	}
	if _, _, err := h.run(t, "token", "delete", tok.ID); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("deleting twice: %v", err)
	}
}

// startMover plays both shards of every move in the store: a step per tick,
// at fixed times (frozen at +1s, switched at +3s, cleaned up at +4s).
func startMover(t *testing.T, st store.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	at := func(s int) *time.Time { x := created.Add(time.Duration(s) * time.Second); return &x }
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			list, err := st.ListSites(ctx, store.ListOptions{Limit: 1000})
			if err != nil {
				continue
			}
			for _, s := range list.Items {
				if !s.Move.Active() {
					continue
				}
				_, _ = st.UpdateSite(ctx, s.Metadata.Name, func(s *site.Site) error {
					m := s.Move
					switch m.Phase {
					case site.MoveCopying:
						m.PreExported, m.PreImported = at(0), at(0)
					case site.MoveExporting:
						m.FreezeStarted, m.Exported = at(1), at(2)
					case site.MoveImporting:
						m.Imported, m.TargetEndpoint = at(3), "unix:/s2.sock"
					case site.MoveCleaningUp:
						m.CleanedUp = at(4)
					}
					site.AdvanceMove(s, *at(3))
					return nil
				})
			}
		}
	}()
}

func TestSiteMove(t *testing.T) {
	h := newHarness(t)
	addShards(t, h.store)
	for _, d := range []string{"blog.localhost", "shop.localhost"} {
		if _, _, err := h.run(t, "site", "create", d, "--title", "T", "--admin-email", "me@example.com", "--wait=false"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.UpdateSite(context.Background(), d, func(s *site.Site) error { s.Status.Phase = site.PhaseReady; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// Without --wait: the move is started.
	out, _, err := h.run(t, "site", "move", "shop.localhost", "--to", "s2")
	if err != nil || !strings.Contains(out, "of shop.localhost from local to s2: Copying.") {
		t.Fatalf("move: %v %q", err, out)
	}
	out, _, err = h.run(t, "site", "move", "shop.localhost", "--abort", "-o", "json")
	if err != nil || !strings.Contains(out, `"phase": "Aborting"`) {
		t.Fatalf("abort: %v %q", err, out)
	}

	// With --wait: every phase until the switch, then the freeze window and
	// the total (until the switch; the source's cleanup goes on).
	startMover(t, h.store)
	out, stderr, err := h.run(t, "site", "move", "blog.localhost", "--to", "s2", "--wait")
	if err != nil {
		t.Fatalf("move --wait: %v (stderr %q)", err, stderr)
	}
	wantProgress := "moving blog.localhost: Copying\nmoving blog.localhost: Exporting\nmoving blog.localhost: Importing\nmoving blog.localhost: CleaningUp\n"
	// A poll may miss a phase the mover passed quickly (and see Done
	// rather than CleaningUp); the first is always seen.
	if !strings.HasPrefix(stderr, "moving blog.localhost: Copying\n") || len(stderr) > len(wantProgress) ||
		(!strings.HasSuffix(stderr, ": CleaningUp\n") && !strings.HasSuffix(stderr, ": Done\n")) {
		t.Errorf("progress:\n%s", stderr)
	}
	if !strings.HasPrefix(out, "Site blog.localhost moved from local to s2") || !strings.Contains(out, "\nFreeze window: 2s\nTotal time:    3s\n") {
		t.Errorf("stdout:\n%s", out)
	}
	// --wait returned at the switch; the mover finishes the source's
	// cleanup in the background: a new move before it is refused.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := h.store.GetSite(context.Background(), "blog.localhost")
		if err != nil {
			t.Fatal(err)
		}
		if !s.Move.Active() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the move did not end: %+v", s.Move)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// With --wait-cleanup: until Done, and how long after the switch the
	// source's copy went.
	// (Back and forth: the cases below want it on s2.)
	for _, to := range []string{"local", "s2"} {
		out, stderr, err = h.run(t, "site", "move", "blog.localhost", "--to", to, "--wait-cleanup")
		if err != nil {
			t.Fatalf("move --wait-cleanup: %v (stderr %q)", err, stderr)
		}
		if !strings.HasSuffix(stderr, "moving blog.localhost: Done\n") {
			t.Errorf("progress:\n%s", stderr)
		}
		want := "Freeze window: 2s\nTotal time:    3s\nSource cleaned up: 1s after the switch\n"
		if !strings.HasPrefix(out, "Site blog.localhost moved from ") || !strings.HasSuffix(out, " to "+to+".\n"+want) {
			t.Errorf("stdout:\n%s\nwant … to %s.\n%s", out, to, want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"site", "move", "blog.localhost"}, "give --to SHARD, or --abort"},
		{[]string{"site", "move", "blog.localhost", "--to", "s2", "--abort"}, "give --to SHARD, or --abort"},
		{[]string{"site", "move", "blog.localhost", "--to", "s2"}, "already on shard"},
		{[]string{"site", "move", "blog.localhost", "--abort"}, "no active move"},
		{[]string{"site", "move", "nope.localhost", "--to", "s2"}, "not found"},
	} {
		if _, _, err := h.run(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}
