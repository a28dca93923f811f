package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/backup/backupctl"
	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// backupHarness is the CLI against the real API with backup repositories,
// the leader's backup work running, and a fake shard that runs backup
// jobs (claims them, reports progress, succeeds with a real snapshot) and
// brings sites created from a snapshot to Ready.
type backupHarness struct {
	*harness
	repos *repos.Manager
	ref   string
}

func newBackupHarness(t *testing.T) *backupHarness {
	t.Helper()
	h := newHarness(t)
	dir := t.TempDir()
	kek, err := repos.LoadKEK(filepath.Join(dir, repos.KEKFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := repos.New(repos.Config{BaseURL: repos.DefaultBaseURL(dir), KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	meshCA, err := mtls.NewCA(bytes.Repeat([]byte{5}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: h.store, Placer: api.StaticPlacer("local"), Backups: m, MeshCA: meshCA,
		Clock:     func() time.Time { return cliNow },
		PublicURL: func(d string) string { return "http://" + d + ":8080" }}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	h.env[EnvURL] = srv.URL
	b := &backupHarness{harness: h, repos: m}

	ctx, cancel := context.WithCancel(context.Background())
	for _, sh := range []string{"local", "s2"} {
		if err := h.store.CreateShard(ctx, &store.Shard{Name: sh, Phase: store.ShardReady, CreatedAt: created}); err != nil {
			t.Fatal(err)
		}
	}
	s := &site.Site{
		Metadata: site.Metadata{Name: "a.com", UID: "uid-a", CreatedAt: created},
		Spec:     site.Spec{Domain: "a.com", Title: "A", Plan: "basic", Admin: site.Admin{User: "admin", Email: "a@a.com", PasswordHash: "$2a$10$x"}},
		Status:   site.Status{Phase: site.PhaseReady, Shard: "local", URL: "http://a.com:8080", ObservedGeneration: 1},
	}
	if err := h.store.CreateSite(ctx, s); err != nil {
		t.Fatal(err)
	}
	if b.ref, err = b.backup(ctx, s, created); err != nil {
		t.Fatal(err)
	}

	ctl := backupctl.New(backupctl.Config{Store: h.store, Repos: m, Policy: plans.Defaults().BackupPolicy, Tick: 10 * time.Millisecond,
		Clock:      func() time.Time { return cliNow },
		PruneEvery: -1, VerifyEvery: -1, RetentionEvery: -1})
	done := make(chan struct{}, 2)
	t.Cleanup(func() { cancel(); <-done; <-done })
	go func() { defer func() { done <- struct{}{} }(); _ = ctl.Run(ctx) }()
	go func() { defer func() { done <- struct{}{} }(); b.fakeShard(ctx) }()
	return b
}

// backup writes a snapshot of s into its shard's repository and records
// the succeeded job.
func (b *backupHarness) backup(ctx context.Context, s *site.Site, at time.Time) (string, error) {
	r, err := b.repos.Open(ctx, s.Status.Shard, true)
	if err != nil {
		return "", err
	}
	meta, _ := json.Marshal(map[string]any{"site": s.Metadata.Name, "site_uid": s.Metadata.UID, "domain": s.Spec.Domain,
		"url": s.Status.URL, "core_version": "6.8.1", "spec": s.Spec, "gtid": "0-1-7"})
	bk, err := r.NewBackup(ctx, repo.BackupOptions{Site: s.Metadata.Name, Host: s.Status.Shard, Meta: meta})
	if err != nil {
		return "", err
	}
	if _, err := bk.AddStream(ctx, "database.sql", strings.NewReader("CREATE TABLE wp_posts; -- "+at.String())); err != nil {
		return "", err
	}
	snap, err := bk.Commit(ctx)
	if err != nil {
		return "", err
	}
	ref := s.Status.Shard + ":" + snap.ID
	res, _ := json.Marshal(store.BackupResult{Snapshot: ref, TotalBytes: 2048, NewBytes: 1024, StoredBytes: 700, Time: at})
	j := &store.Job{ID: "job-" + snap.ID[:12], Kind: store.JobBackup, Site: s.Metadata.Name, SiteUID: s.Metadata.UID, Shard: s.Status.Shard,
		Params: json.RawMessage(`{"reason":"manual"}`), Phase: store.JobSucceeded, Result: res, CreatedAt: at, StartedAt: &at, FinishedAt: &at}
	return ref, b.store.CreateJob(ctx, j)
}

// fakeShard runs backup jobs in two progress steps and makes sites created
// from a snapshot Ready.
func (b *backupHarness) fakeShard(ctx context.Context) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l, err := b.store.ListJobs(ctx, store.JobListOptions{Kind: store.JobBackup, Phases: []store.JobPhase{store.JobPending, store.JobRunning}})
		if err != nil {
			continue
		}
		for _, j := range l.Items {
			now := time.Now().UTC()
			switch {
			case j.Phase == store.JobPending:
				_, _ = b.store.UpdateJob(ctx, j.ID, func(x *store.Job) error {
					x.Phase, x.Attempts, x.StartedAt = store.JobRunning, 1, &now
					x.Progress = store.JobProgress{Done: 1024, Total: 2048, Message: "dumping the database"}
					return nil
				})
			case j.StartedAt != nil && now.Sub(*j.StartedAt) < 250*time.Millisecond:
				// Stay Running long enough for a waiting client that polls
				// every few milliseconds to see it, even on a loaded machine.
			default:
				st, err := b.store.GetSite(ctx, j.Site)
				if err != nil {
					continue
				}
				ref, err := b.backup(ctx, st, now)
				if err != nil {
					continue
				}
				_, _ = b.store.UpdateJob(ctx, j.ID, func(x *store.Job) error {
					res, _ := json.Marshal(store.BackupResult{Snapshot: ref, TotalBytes: 2048})
					x.Phase, x.FinishedAt, x.Result = store.JobSucceeded, &now, res
					x.Progress = store.JobProgress{Done: 2048, Total: 2048, Message: "done"}
					return nil
				})
			}
		}
		sites, err := b.store.ListSites(ctx, store.ListOptions{Limit: 1000})
		if err != nil {
			continue
		}
		for _, s := range sites.Items {
			if s.Spec.Source != nil && s.Status.Phase != site.PhaseReady {
				_, _ = b.store.UpdateSite(ctx, s.Metadata.Name, func(x *site.Site) error {
					x.Status.Phase, x.Status.ObservedGeneration = site.PhaseReady, x.Metadata.Generation
					return nil
				})
			}
		}
	}
}

func TestBackupCommands(t *testing.T) {
	b := newBackupHarness(t)
	short := b.ref[:len("local:")+8]
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		out     []string // substrings of stdout
		errOut  []string // substrings of stderr
	}{
		{name: "list", args: []string{"backup", "list", "--site", "a.com"}, out: []string{"REF", b.ref, "a.com", "2.0 KiB", "1.0 KiB", "manual", "1h ago"}},
		{name: "show", args: []string{"backup", "show", short}, out: []string{"Snapshot:  " + b.ref, "Site:      a.com", "Core:      6.8.1", "database.sql", "Job:       job-"}},
		{name: "show unknown", args: []string{"backup", "show", "local:ffffffffffff"}, wantErr: "not found"},
		{name: "create and wait", args: []string{"backup", "create", "--site", "a.com", "--wait"},
			out: []string{"Kind:      backup", "Phase:     Succeeded", "Snapshot:  local:"}, errOut: []string{"backup a.com: Running [", " 50% 1.0 KiB/2.0 KiB dumping the database", "100%"}},
		{name: "create needs a site", args: []string{"backup", "create"}, wantErr: "--site is required"},
		{name: "restore needs a mode", args: []string{"backup", "restore", b.ref}, wantErr: "exactly one of --in-place and --to-domain"},
		{name: "restore in place", args: []string{"backup", "restore", b.ref, "--in-place"}, out: []string{"Kind:      restore", "Phase:     Pending", "Shard:     local"}},
		{name: "restore into a new domain and wait", args: []string{"backup", "restore", b.ref, "--to-domain", "copy.a.com", "--shard", "s2", "--wait"},
			errOut: []string{"restoring copy.a.com: Ready"}},
		{name: "point in time needs --at", args: []string{"backup", "restore", "--site", "a.com", "--in-place"}, wantErr: "--site and --at go together"},
		{name: "point in time needs --site", args: []string{"backup", "restore", "--at", "2025-01-02T03:30:00Z", "--in-place"}, wantErr: "--site and --at go together"},
		{name: "point in time or REF", args: []string{"backup", "restore", b.ref, "--site", "a.com", "--at", "2025-01-02T03:30:00Z", "--in-place"}, wantErr: "not both"},
		{name: "restore needs REF or a point in time", args: []string{"backup", "restore", "--in-place"}, wantErr: "give a snapshot (REF), or --site and --at"},
		{name: "point in time, --at not RFC 3339", args: []string{"backup", "restore", "--site", "a.com", "--at", "yesterday", "--in-place"}, wantErr: "not an RFC 3339 time"},
		{name: "point in time in the future", args: []string{"backup", "restore", "--site", "a.com", "--at", cliNow.Add(time.Hour).Format(time.RFC3339), "--in-place"}, wantErr: "in the future"},
		{name: "point in time before the oldest snapshot", args: []string{"backup", "restore", "--site", "a.com", "--at", created.Add(-time.Hour).Format(time.RFC3339), "--in-place"},
			wantErr: "oldest was taken at " + created.Format(time.RFC3339)},
		{name: "point in time into a new domain and wait", args: []string{"backup", "restore", "--site", "a.com", "--at", "2025-01-02T04:30:00+01:00", "--to-domain", "then.a.com", "--wait"},
			errOut: []string{"restoring a.com to 2025-01-02T03:30:00Z from snapshot " + b.ref, "restoring then.a.com: Ready"}},
		{name: "verify", args: []string{"backup", "verify", "--full", "--wait"}, out: []string{"REPOSITORY", "local", "OK", "No damaged snapshots."}},
		{name: "verify-restore", args: []string{"backup", "verify", "--site", "a.com", "--restore"}, out: []string{"Kind:      verify-restore", "Shard:     local"}},
		{name: "prune", args: []string{"backup", "prune", "--wait"}, out: []string{"Kind:      prune", "Phase:     Succeeded", `"repo":"local"`, `"bytes_freed"`}},
		{name: "coverage", args: []string{"backup", "coverage"}, out: []string{"SITE", "a.com", "basic", "24h", "OK", " site(s), 0 alert(s)"}},
		{name: "jobs", args: []string{"job", "list", "--site", "a.com"}, out: []string{"ID", "backup", "a.com", "Succeeded"}},
		{name: "job get unknown", args: []string{"job", "get", "nope"}, wantErr: "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := b.run(t, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\nstdout: %s\nstderr: %s", err, out, errOut)
			}
			for _, want := range tc.out {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			for _, want := range tc.errOut {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
		})
	}
}

func TestBackupJSON(t *testing.T) {
	b := newBackupHarness(t)
	out, _, err := b.run(t, "backup", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Items []struct {
			Ref, Site string
		}
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Items) != 1 || l.Items[0].Ref != b.ref {
		t.Fatalf("list json: %v %s", err, out)
	}
	out, _, err = b.run(t, "backup", "restore", b.ref, "--to-domain", "c.com", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var s site.Site
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Spec.Source == nil || s.Spec.Source.Snapshot != b.ref || s.Spec.Admin.PasswordHash != "" {
		t.Fatalf("restore json: %v %s", err, out)
	}
	out, _, err = b.run(t, "backup", "restore", "--site", "a.com", "--at", created.Add(time.Minute).Format(time.RFC3339), "--in-place", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var j store.Job
	var p store.RestoreParams
	if err := json.Unmarshal([]byte(out), &j); err != nil || json.Unmarshal(j.Params, &p) != nil || j.Kind != store.JobRestore ||
		p.Snapshot != b.ref || !p.InPlace || p.At == nil || !p.At.Equal(created.Add(time.Minute)) {
		t.Fatalf("point-in-time restore json: %v %s", err, out)
	}
	out, _, err = b.run(t, "backup", "coverage", "-o", "json")
	if err != nil || !strings.Contains(out, `"last_ref": "local:`) || !strings.Contains(out, `"window": "30h0m0s"`) {
		t.Fatalf("coverage json: %v %s", err, out)
	}
}

// TestShardRecoverCommand recovers a lost shard with the leader's backup
// work and a fake target shard, and prints the per-site report.
func TestShardRecoverCommand(t *testing.T) {
	b := newBackupHarness(t)
	ctx := context.Background()
	if _, err := b.store.UpdateShard(ctx, "local", func(sh *store.Shard) error { sh.Phase = store.ShardUnhealthy; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.run(t, "shard", "recover", "local", "--to", "local"); err == nil {
		t.Error("recovering onto the lost shard worked")
	}
	// The fake shard makes the switched site Ready (it has a source now).
	out, errOut, err := b.run(t, "shard", "recover", "local", "--to", "s2", "--wait")
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errOut)
	}
	for _, want := range []string{"Kind:      recover", "Phase:     Succeeded", "SITE", "a.com", b.ref, "Ready", "Recovered in "} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "recover ") {
		t.Errorf("no progress on stderr: %s", errOut)
	}
	st, err := b.store.GetSite(ctx, "a.com")
	if err != nil || st.Status.Shard != "s2" || st.Spec.Source == nil {
		t.Errorf("a.com after recovery: %+v %v", st, err)
	}
}
