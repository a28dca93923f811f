package cli

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// endJobs plays the control plane: it ends every Pending job of kind with
// the result res returns (and fails it when res says so).
func endJobs(t *testing.T, st store.Store, kind store.JobKind, res func(j *store.Job) (any, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			l, err := st.ListJobs(ctx, store.JobListOptions{Kind: kind, Phases: []store.JobPhase{store.JobPending}})
			if err == nil {
				for _, j := range l.Items {
					r, failed := res(&j)
					raw, _ := json.Marshal(r)
					_, _ = st.UpdateJob(ctx, j.ID, func(x *store.Job) error {
						x.Phase, x.Result = store.JobSucceeded, raw
						if failed != "" {
							x.Phase, x.Error = store.JobFailed, failed
						}
						return nil
					})
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
}

func TestSiteUpdateCommand(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, d := range []string{"a.test", "b.test"} {
		if _, _, err := h.run(t, "site", "create", d, "--title", "T", "--admin-email", "me@example.com", "--wait=false"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.UpdateSite(ctx, d, func(s *site.Site) error {
			s.Status.Shard, s.Status.Phase = "local", site.PhaseReady
			s.Spec.Plugins = []site.Extension{{Name: "hello", Version: "1.0", Active: true}}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu  sync.Mutex
		got []store.UpdateParams
	)
	endJobs(t, h.store, store.JobUpdate, func(j *store.Job) (any, string) {
		var p store.UpdateParams
		_ = json.Unmarshal(j.Params, &p)
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
		before := site.CodeSpec{Plugins: []site.Extension{{Name: "hello", Version: "1.0", Active: true}}}
		after := site.CodeSpec{Plugins: []site.Extension{{Name: p.Plugins[0].Name, Version: p.Plugins[0].Version, Active: true}}}
		r := store.UpdateResult{Step: store.UpdateStepDone, Staging: site.StagingName(j.Site, j.ID), Snapshot: "local:abc",
			Before: &before, After: &after, Duration: "1m2s"}
		if p.Plugins[0].Name == "broken" {
			r.StagingResult = &store.CodeResult{RolledBack: true, Error: "PHP Fatal error in broken.php",
				Checks: []store.HealthCheck{{Name: "GET /", OK: false, Detail: "500"}}}
			r.Error = "refused: the change failed on the staging site, the site was not touched: rolled back: PHP Fatal error in broken.php"
			return r, r.Error
		}
		r.StagingResult = &store.CodeResult{Changes: []store.CodeChange{{Action: "update", Kind: "plugin", Name: "hello", From: "1.0", To: "2.0"}},
			Checks: []store.HealthCheck{{Name: "GET /shop", OK: true}}}
		r.Result, r.Applied, r.Generation = r.StagingResult, true, 3
		return r, ""
	})
	out, errOut, err := h.run(t, "site", "update", "a.test", "--plugin", "hello@2.0", "--smoke-path", "/shop", "--smoke-contains", "Shop")
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errOut)
	}
	for _, want := range []string{"Kind:      update", "Change:    ~plugin hello 1.0 → 2.0", "On the staging site:", "update plugin hello 1.0 → 2.0",
		"[ok  ] GET /shop", "Applied to a.test (generation 3)"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "update a.test") {
		t.Errorf("no progress on stderr: %q", errOut)
	}
	mu.Lock()
	if len(got) != 1 || !got[0].KeepActive || got[0].Smoke.Contains != "Shop" || got[0].Smoke.Paths[0] != "/shop" || got[0].Plugins[0].Version != "2.0" {
		t.Errorf("params %+v", got)
	}
	mu.Unlock()
	out, _, err = h.run(t, "site", "update", "b.test", "--plugin", "broken@2.0")
	if err == nil || !strings.Contains(out, "NOT APPLIED: refused") || !strings.Contains(out, "[FAIL] GET / 500") {
		t.Errorf("refused update: err %v\n%s", err, out)
	}
	if _, _, err := h.run(t, "site", "update", "b.test"); err == nil || !strings.Contains(err.Error(), "nothing to update") {
		t.Errorf("empty update: %v", err)
	}
	if _, _, err := h.run(t, "site", "update", "b.test", "--plugin", "Bad Name@1"); err == nil || !strings.Contains(err.Error(), "--plugin") {
		t.Errorf("bad plugin: %v", err)
	}
	out, _, err = h.run(t, "site", "update", "b.test", "--plugin", "hello@3", "--wait=false", "-o", "json")
	if err != nil || !strings.Contains(out, `"kind": "update"`) {
		t.Errorf("--wait=false -o json: %v\n%s", err, out)
	}
}

func TestFleetUpdateCommand(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, d := range []string{"a.test", "b.test", "c.test"} {
		if _, _, err := h.run(t, "site", "create", d, "--title", "T", "--admin-email", "me@example.com", "--wait=false"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.UpdateSite(ctx, d, func(s *site.Site) error {
			s.Status.Shard, s.Status.Phase = "local", site.PhaseReady
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu     sync.Mutex
		params store.FleetUpdateParams
	)
	endJobs(t, h.store, store.JobFleetUpdate, func(j *store.Job) (any, string) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.Unmarshal(j.Params, &params)
		r := store.FleetUpdateResult{Waves: []store.FleetWave{
			{Sites: []store.FleetSite{{Site: "a.test", Job: "job-1", State: store.FleetFailed, Error: "refused: PHP Fatal error"}}},
			{Sites: []store.FleetSite{{Site: "b.test", State: store.FleetSkipped}, {Site: "c.test", State: store.FleetSkipped}}},
		}, Stopped: "wave 1: 1 of 1 updates failed, more than the 20% allowed", Failed: 1, Skipped: 2}
		return r, "stopped: " + r.Stopped
	})
	out, _, err := h.run(t, "fleet", "update", "--plugin", "hello@2.0", "--sites", "a.test,b.test,c.test", "--canary", "1", "--wave", "5", "--max-failure-rate", "0.2", "--parallel", "2")
	if err == nil {
		t.Fatalf("a stopped fleet update exited 0:\n%s", out)
	}
	for _, want := range []string{"Kind:      fleet-update", "WAVE", "a.test", "failed", "skipped", "0 updated, 1 failed, 2 skipped", "STOPPED: wave 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(params.Sites, ",") != "a.test,b.test,c.test" || params.Canary != 1 || params.WaveSize != 5 || params.MaxFailureRate != 0.2 || params.Parallel != 2 || !params.Change.KeepActive {
		t.Errorf("params %+v", params)
	}
	if _, _, err := h.run(t, "fleet", "update", "--plugin", "hello@2.0"); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Errorf("no selector: %v", err)
	}
}
