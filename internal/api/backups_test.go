package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/backup/catalog"
	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/pitr"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// bkEnv is fedEnv with backup repositories under a temporary directory, a
// settable clock, and one snapshot of a.com in s1's repository recorded
// by a succeeded backup job (job-a1).
type bkEnv struct {
	*env
	repos *repos.Manager
	now   atomic.Pointer[time.Time]
	ref   string // a.com's snapshot
}

func newBkEnv(t *testing.T) *bkEnv {
	t.Helper()
	e := &bkEnv{env: fedEnv(t)}
	dir := t.TempDir()
	kek, err := repos.LoadKEK(filepath.Join(dir, repos.KEKFile))
	if err != nil {
		t.Fatal(err)
	}
	e.repos, err = repos.New(repos.Config{BaseURL: repos.DefaultBaseURL(dir), KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.repos.Close() })
	e.setNow(testNow)
	e.handler = New(Config{
		Store:     e.store,
		Placer:    StaticPlacer("s1"),
		Clock:     func() time.Time { return *e.now.Load() },
		PublicURL: func(d string) string { return "http://" + d + ":8080" },
		Backups:   e.repos,
	})
	st, err := e.store.GetSite(context.Background(), "a.com")
	if err != nil {
		t.Fatal(err)
	}
	e.ref = e.snapshot(t, "s1", st, testNow.Add(-time.Hour))
	return e
}

func (e *bkEnv) setNow(t time.Time) { e.now.Store(&t) }

// snapshot writes a snapshot of st into repository repoName as a shard
// would, records the succeeded backup job, and returns its reference.
func (e *bkEnv) snapshot(t *testing.T, repoName string, st *site.Site, at time.Time) string {
	t.Helper()
	ctx := context.Background()
	r, err := e.repos.Open(ctx, repoName, true)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := json.Marshal(map[string]any{
		"version": 1, "site": st.Metadata.Name, "site_uid": st.Metadata.UID, "domain": st.Spec.Domain,
		"url": "http://" + st.Spec.Domain, "core_version": "6.8.1", "spec": st.Spec,
		"salts": map[string]string{"auth_key": "secret-salt"}, "gtid": "0-1-42",
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.NewBackup(ctx, repo.BackupOptions{Site: st.Metadata.Name, Host: repoName, Tags: []string{"manual"}, Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddStream(ctx, "database.sql", strings.NewReader("CREATE TABLE wp_options;")); err != nil {
		t.Fatal(err)
	}
	snap, err := b.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ref := repoName + ":" + snap.ID
	res, _ := json.Marshal(store.BackupResult{Snapshot: ref, TotalBytes: 24, NewBytes: 24, StoredBytes: 80, Time: at})
	j := &store.Job{ID: "job-" + snap.ID[:8], Kind: store.JobBackup, Site: st.Metadata.Name, SiteUID: st.Metadata.UID,
		Shard: repoName, Params: json.RawMessage(`{"reason":"manual"}`), Phase: store.JobSucceeded, Result: res,
		CreatedAt: at, StartedAt: &at, FinishedAt: &at}
	if err := e.store.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	return ref
}

// finishAt sets when the backup job of snapshot ref finished.
func (e *bkEnv) finishAt(t *testing.T, ref string, at time.Time) {
	t.Helper()
	_, err := e.store.UpdateJob(context.Background(), "job-"+strings.TrimPrefix(ref, "s1:")[:8], func(j *store.Job) error {
		j.FinishedAt = &at
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// moveSnapshot sets the time of a.com's snapshot (e.ref) and its job.
func (e *bkEnv) moveSnapshot(t *testing.T, at time.Time) {
	t.Helper()
	_, err := e.store.UpdateJob(context.Background(), "job-"+strings.TrimPrefix(e.ref, "s1:")[:8], func(j *store.Job) error {
		var res store.BackupResult
		if err := json.Unmarshal(j.Result, &res); err != nil {
			return err
		}
		res.Time = at
		j.Result, _ = json.Marshal(res)
		j.StartedAt, j.FinishedAt = &at, &at
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *bkEnv) job(t *testing.T, id string) *store.Job {
	t.Helper()
	j, err := e.store.GetJob(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// createJob stores a Pending job directly.
func (e *bkEnv) createJob(t *testing.T, j store.Job) {
	t.Helper()
	if j.CreatedAt.IsZero() {
		j.CreatedAt = testNow
	}
	if err := e.store.CreateJob(context.Background(), &j); err != nil {
		t.Fatal(err)
	}
}

func items(m map[string]any) []map[string]any {
	raw, _ := m["items"].([]any)
	out := []map[string]any{}
	for _, it := range raw {
		if mm, ok := it.(map[string]any); ok {
			out = append(out, mm)
		}
	}
	return out
}

func TestBackupScenarios(t *testing.T) {
	const ref = "{ref}" // replaced by a.com's snapshot reference in paths and bodies
	tests := []struct {
		name   string
		setup  func(t *testing.T, e *bkEnv)
		method string
		path   string
		token  string
		body   any
		status int
		code   string
		fields map[string]any
		check  func(t *testing.T, e *bkEnv, m map[string]any)
	}{
		// Backups now.
		{name: "create backup", method: "POST", path: "/v1/sites/a.com/backups", token: adminSecret, status: 202,
			fields: map[string]any{"kind": "backup", "site": "a.com", "shard": "s1", "phase": "Pending", "params.reason": "manual"},
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				code, again, _ := e.do(t, "POST", "/v1/sites/a.com/backups", adminSecret, nil)
				if code != 200 || again["id"] != m["id"] {
					t.Errorf("second create: %d %v, want 200 and job %v", code, again["id"], m["id"])
				}
			}},
		{name: "create backup viewer forbidden", method: "POST", path: "/v1/sites/a.com/backups", token: viewerSecret, status: 403, code: "forbidden"},
		{name: "create backup unknown site", method: "POST", path: "/v1/sites/x.com/backups", token: adminSecret, status: 404, code: "not_found"},
		{name: "create backup of a pending site", setup: func(t *testing.T, e *bkEnv) { e.place(t, "p.com", "s1", site.PhasePending) },
			method: "POST", path: "/v1/sites/p.com/backups", token: adminSecret, status: 409, code: "conflict"},
		{name: "create backup of a deleting site", setup: func(t *testing.T, e *bkEnv) { e.do(t, "DELETE", "/v1/sites/a.com", adminSecret, nil) },
			method: "POST", path: "/v1/sites/a.com/backups", token: adminSecret, status: 409, code: "conflict"},
		{name: "create backup bad body", method: "POST", path: "/v1/sites/a.com/backups", token: adminSecret, body: map[string]any{"x": 1}, status: 400, code: "invalid_argument"},

		// Listing and showing snapshots.
		{name: "list backups", method: "GET", path: "/v1/backups", token: viewerSecret, status: 200,
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				it := items(m)
				if len(it) != 1 || it[0]["ref"] != e.ref || it[0]["site"] != "a.com" || it[0]["repo"] != "s1" || it[0]["total_bytes"] != 24.0 {
					t.Errorf("list = %v", m)
				}
			}},
		{name: "list backups of a site", setup: func(t *testing.T, e *bkEnv) {
			st := e.place(t, "b.com", "s2", site.PhaseReady)
			e.snapshot(t, "s2", st, testNow)
		}, method: "GET", path: "/v1/backups?site=B.com", token: viewerSecret, status: 200,
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				it := items(m)
				if len(it) != 1 || it[0]["site"] != "b.com" || !strings.HasPrefix(it[0]["ref"].(string), "s2:") {
					t.Errorf("list = %v", m)
				}
			}},
		{name: "list backups skips forgotten", setup: func(t *testing.T, e *bkEnv) {
			_, err := e.store.UpdateJob(context.Background(), "job-"+strings.TrimPrefix(e.ref, "s1:")[:8], func(j *store.Job) error {
				j.Result = json.RawMessage(`{"snapshot":"x:y","forgotten_at":"2025-01-01T00:00:00Z"}`)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}, method: "GET", path: "/v1/backups?site=a.com", token: viewerSecret, status: 200,
			check: func(t *testing.T, _ *bkEnv, m map[string]any) {
				if len(items(m)) != 0 {
					t.Errorf("list = %v", m)
				}
			}},
		{name: "list backups bad continue", method: "GET", path: "/v1/backups?continue=!!", token: viewerSecret, status: 400, code: "invalid_argument"},
		{name: "show backup", method: "GET", path: "/v1/backups/" + ref, token: viewerSecret, status: 200,
			fields: map[string]any{"site": "a.com", "repo": "s1", "core_version": "6.8.1", "spec.domain": "a.com",
				"spec.admin.password_hash": nil, "host": "s1", "files.0": nil},
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				files, _ := m["files"].([]any)
				f, _ := files[0].(map[string]any)
				if len(files) != 1 || f["name"] != "database.sql" || f["size"] != 24.0 || len(f["sha256"].(string)) != 64 {
					t.Errorf("files = %v", files)
				}
				if m["ref"] != e.ref || !strings.HasPrefix(m["job"].(string), "job-") {
					t.Errorf("ref %v job %v", m["ref"], m["job"])
				}
				b, _ := json.Marshal(m)
				if strings.Contains(string(b), "secret-salt") {
					t.Error("the manifest's salts were served")
				}
			}},
		{name: "show backup by id prefix", method: "GET", path: "/v1/backups/s1:zz", token: viewerSecret, status: 404, code: "not_found",
			check: func(t *testing.T, e *bkEnv, _ map[string]any) {
				code, m, _ := e.do(t, "GET", "/v1/backups/"+e.ref[:10], viewerSecret, nil)
				if code != 200 || m["ref"] != e.ref {
					t.Errorf("by prefix: %d %v, want ref %s", code, m["ref"], e.ref)
				}
			}},
		{name: "show unknown snapshot", method: "GET", path: "/v1/backups/s1:00000000", token: viewerSecret, status: 404, code: "not_found"},
		{name: "show snapshot of an unknown repository", method: "GET", path: "/v1/backups/s7:abc", token: viewerSecret, status: 404, code: "not_found"},
		{name: "show malformed reference", method: "GET", path: "/v1/backups/nocolon", token: viewerSecret, status: 404, code: "not_found"},

		// Restores.
		{name: "restore in place", method: "POST", path: "/v1/backups/" + ref + "/restore", token: adminSecret, body: map[string]any{"in_place": true}, status: 202,
			fields: map[string]any{"job.kind": "restore", "job.site": "a.com", "job.shard": "s1", "job.params.in_place": true, "job.params.from_domain": "a.com"},
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				if get(m, "job.params.snapshot") != e.ref {
					t.Errorf("params = %v", get(m, "job.params"))
				}
				code, again, _ := e.do(t, "POST", "/v1/backups/"+e.ref+"/restore", adminSecret, map[string]any{"in_place": true})
				if code != 409 || errCode(again) != "conflict" {
					t.Errorf("second restore: %d %v", code, again)
				}
			}},
		{name: "restore in place onto another shard", method: "POST", path: "/v1/backups/" + ref + "/restore", token: adminSecret,
			body: map[string]any{"in_place": true, "shard": "s2"}, status: 400, code: "invalid_argument"},
		{name: "restore neither", method: "POST", path: "/v1/backups/" + ref + "/restore", token: adminSecret, body: map[string]any{}, status: 400, code: "invalid_argument"},
		{name: "restore both", method: "POST", path: "/v1/backups/" + ref + "/restore", token: adminSecret,
			body: map[string]any{"in_place": true, "new_domain": "c.com"}, status: 400, code: "invalid_argument"},
		{name: "restore viewer forbidden", method: "POST", path: "/v1/backups/" + ref + "/restore", token: viewerSecret, body: map[string]any{"in_place": true}, status: 403, code: "forbidden"},
		{name: "restore into a new domain", method: "POST", path: "/v1/backups/" + ref + "/restore", token: adminSecret,
			body: map[string]any{"new_domain": "Clone.a.com"}, status: 201,
			fields: map[string]any{"site.metadata.name": "clone.a.com", "site.spec.domain": "clone.a.com", "site.status.shard": "s1",
				"site.status.phase": "Pending", "site.spec.source.from_site": "a.com", "site.spec.source.from_url": "http://a.com",
				"site.status.url": "http://clone.a.com:8080", "site.spec.admin.password_hash": nil, "job": nil},
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				if get(m, "site.spec.source.snapshot") != e.ref {
					t.Errorf("source = %v", get(m, "site.spec.source"))
				}
				st, err := e.store.GetSite(context.Background(), "clone.a.com")
				if err != nil || st.Spec.Admin.PasswordHash == "" || st.Metadata.UID == e.uid(t, "a.com") {
					t.Errorf("stored clone: %+v %v", st, err)
				}
			}},
		{name: "restore into a new domain on a shard", method: "POST", path: "/v1/backups/" + ref + "/restore", token: adminSecret,
			body: map[string]any{"new_domain": "c.com", "shard": "s2"}, status: 201, fields: map[string]any{"site.status.shard": "s2"}},
		{name: "restore into a cordoned shard", method: "POST", path: "/v1/backups/" + ref + "/restore", token: adminSecret,
			body: map[string]any{"new_domain": "c.com", "shard": "s3"}, status: 400, code: "invalid_argument"},
		{name: "restore into an existing domain", method: "POST", path: "/v1/backups/" + ref + "/restore", token: adminSecret,
			body: map[string]any{"new_domain": "a.com"}, status: 409, code: "already_exists"},
		{name: "restore into a bad domain", method: "POST", path: "/v1/backups/" + ref + "/restore", token: adminSecret,
			body: map[string]any{"new_domain": "not a domain"}, status: 400, code: "invalid_domain"},
		{name: "a database log segment is no snapshot to restore", setup: func(t *testing.T, e *bkEnv) {
			ctx := context.Background()
			r, err := e.repos.Open(ctx, "s1", true)
			if err != nil {
				t.Fatal(err)
			}
			b, err := r.NewBackup(ctx, repo.BackupOptions{Site: "a.com", Host: "s1", Tags: []string{pitr.Tag}, Meta: []byte(`{"kind":"pitr-segment","site":"a.com"}`)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.AddStream(ctx, pitr.StreamName, strings.NewReader("{}")); err != nil {
				t.Fatal(err)
			}
			snap, err := b.Commit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			e.ref = "s1:" + snap.ID
		}, method: "POST", path: "/v1/backups/" + ref + "/restore", token: adminSecret, body: map[string]any{"in_place": true}, status: 404, code: "not_found"},
		{name: "restore unknown snapshot", method: "POST", path: "/v1/backups/s1:0000/restore", token: adminSecret,
			body: map[string]any{"in_place": true}, status: 404, code: "not_found"},

		// Point-in-time restores (POST /v1/sites/{name}/restore): the
		// site's latest snapshot completed before at. a.com's snapshot
		// is of testNow-1h; the clock says testNow.
		{name: "restore to a point in time in place", setup: func(t *testing.T, e *bkEnv) {
			// A newer snapshot, whose job finished after at: not chosen.
			st, _ := e.store.GetSite(context.Background(), "a.com")
			late := e.snapshot(t, "s1", st, testNow.Add(-20*time.Minute))
			e.finishAt(t, late, testNow.Add(-5*time.Minute))
		}, method: "POST", path: "/v1/sites/a.com/restore", token: adminSecret,
			body: map[string]any{"at": testNow.Add(-10 * time.Minute).In(time.FixedZone("x", 2*3600)).Format(time.RFC3339), "in_place": true}, status: 202,
			fields: map[string]any{"job.kind": "restore", "job.site": "a.com", "job.shard": "s1", "job.params.in_place": true,
				"job.params.at": testNow.Add(-10 * time.Minute).UTC().Format(time.RFC3339), "at": testNow.Add(-10 * time.Minute).UTC().Format(time.RFC3339)},
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				if get(m, "job.params.snapshot") != e.ref || m["snapshot"] != e.ref {
					t.Errorf("snapshot = %v, params = %v, want %s", m["snapshot"], get(m, "job.params"), e.ref)
				}
				code, again, _ := e.do(t, "POST", "/v1/sites/a.com/restore", adminSecret, map[string]any{"at": testNow.Format(time.RFC3339), "in_place": true})
				if code != 409 || errCode(again) != "conflict" {
					t.Errorf("second restore: %d %v", code, again)
				}
			}},
		{name: "restore to a point in time chooses the latest snapshot before it", setup: func(t *testing.T, e *bkEnv) {
			st, _ := e.store.GetSite(context.Background(), "a.com")
			e.snapshot(t, "s1", st, testNow.Add(-30*time.Minute))
			e.snapshot(t, "s1", st, testNow.Add(-2*time.Minute)) // after at
		}, method: "POST", path: "/v1/sites/a.com/restore", token: adminSecret,
			body: map[string]any{"at": testNow.Add(-10 * time.Minute).Format(time.RFC3339), "in_place": true}, status: 202,
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				j, _ := e.store.ListJobs(context.Background(), store.JobListOptions{Site: "a.com", Kind: store.JobBackup})
				want := ""
				for _, x := range j.Items {
					if x.CreatedAt.Equal(testNow.Add(-30 * time.Minute)) {
						var res store.BackupResult
						_ = json.Unmarshal(x.Result, &res)
						want = res.Snapshot
					}
				}
				if want == "" || get(m, "job.params.snapshot") != want {
					t.Errorf("snapshot = %v, want %s (the latest before at)", get(m, "job.params.snapshot"), want)
				}
			}},
		{name: "restore to a point in time into a new domain", method: "POST", path: "/v1/sites/a.com/restore", token: adminSecret,
			body: map[string]any{"at": "2026-01-01T00:00:00Z", "new_domain": "then.a.com"}, status: 201,
			setup: func(t *testing.T, e *bkEnv) {
				e.setNow(time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC))
				e.moveSnapshot(t, time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC))
			},
			fields: map[string]any{"site.metadata.name": "then.a.com", "site.spec.source.from_site": "a.com",
				"site.spec.source.at": "2026-01-01T00:00:00Z", "site.status.phase": "Pending", "at": "2026-01-01T00:00:00Z", "job": nil},
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				if get(m, "site.spec.source.snapshot") != e.ref || m["snapshot"] != e.ref {
					t.Errorf("source = %v", get(m, "site.spec.source"))
				}
				st, err := e.store.GetSite(context.Background(), "then.a.com")
				if err != nil || st.Spec.Source == nil || st.Spec.Source.At == nil || !st.Spec.Source.At.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
					t.Errorf("stored clone source: %+v %v", st.Spec.Source, err)
				}
			}},
		{name: "restore to a point in time from a snapshot without a log position", setup: func(t *testing.T, e *bkEnv) {
			st, _ := e.store.GetSite(context.Background(), "a.com")
			ctx := context.Background()
			r, err := e.repos.Open(ctx, "s1", true)
			if err != nil {
				t.Fatal(err)
			}
			meta, _ := json.Marshal(map[string]any{"site": "a.com", "site_uid": st.Metadata.UID, "domain": "a.com", "spec": st.Spec})
			b, err := r.NewBackup(ctx, repo.BackupOptions{Site: "a.com", Host: "s1", Meta: meta})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.AddStream(ctx, "database.sql", strings.NewReader("-- before pitr")); err != nil {
				t.Fatal(err)
			}
			snap, err := b.Commit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			at := testNow.Add(-30 * time.Minute)
			res, _ := json.Marshal(store.BackupResult{Snapshot: "s1:" + snap.ID, Time: at})
			if err := e.store.CreateJob(ctx, &store.Job{ID: "job-nopos", Kind: store.JobBackup, Site: "a.com", SiteUID: st.Metadata.UID, Shard: "s1",
				Phase: store.JobSucceeded, Result: res, CreatedAt: at, StartedAt: &at, FinishedAt: &at}); err != nil {
				t.Fatal(err)
			}
		}, method: "POST", path: "/v1/sites/a.com/restore", token: adminSecret,
			body: map[string]any{"at": testNow.Add(-10 * time.Minute).Format(time.RFC3339), "in_place": true}, status: 409, code: "conflict",
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				if msg, _ := get(m, "error.message").(string); !strings.Contains(msg, "no database log position") {
					t.Errorf("message %q", msg)
				}
			}},
		{name: "restore to a point in time in place from before a move", setup: func(t *testing.T, e *bkEnv) {
			if _, err := e.store.UpdateSite(context.Background(), "a.com", func(s *site.Site) error { s.Status.Shard = "s2"; return nil }); err != nil {
				t.Fatal(err)
			}
		}, method: "POST", path: "/v1/sites/a.com/restore", token: adminSecret,
			body: map[string]any{"at": testNow.Add(-10 * time.Minute).Format(time.RFC3339), "in_place": true}, status: 409, code: "conflict",
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				code, m2, _ := e.do(t, "POST", "/v1/sites/a.com/restore", adminSecret, map[string]any{"at": testNow.Add(-10 * time.Minute).Format(time.RFC3339), "new_domain": "then.a.com"})
				if code != 201 || get(m2, "site.spec.source.snapshot") != e.ref {
					t.Errorf("into a new domain: %d %v", code, m2)
				}
			}},
		{name: "restore to a point in time in the future", method: "POST", path: "/v1/sites/a.com/restore", token: adminSecret,
			body: map[string]any{"at": testNow.Add(time.Minute).Format(time.RFC3339), "in_place": true}, status: 400, code: "invalid_argument"},
		{name: "restore to a point in time a little ahead (clock skew)", method: "POST", path: "/v1/sites/a.com/restore", token: adminSecret,
			body: map[string]any{"at": testNow.Add(2 * time.Second).Format(time.RFC3339), "in_place": true}, status: 202},
		{name: "restore to a point in time before every snapshot", method: "POST", path: "/v1/sites/a.com/restore", token: adminSecret,
			body: map[string]any{"at": testNow.Add(-2 * time.Hour).Format(time.RFC3339), "in_place": true}, status: 409, code: "conflict",
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				msg, _ := get(m, "error.message").(string)
				if !strings.Contains(msg, testNow.Add(-time.Hour).UTC().Format(time.RFC3339)) || !strings.Contains(msg, "oldest") {
					t.Errorf("message %q does not name the oldest snapshot's time", msg)
				}
			}},
		{name: "restore to a point in time older than retention", setup: func(t *testing.T, e *bkEnv) {
			st, _ := e.store.GetSite(context.Background(), "a.com")
			old := e.snapshot(t, "s1", st, testNow.Add(-48*time.Hour))
			if err := catalog.Forget(context.Background(), e.store, "job-"+strings.TrimPrefix(old, "s1:")[:8], testNow); err != nil {
				t.Fatal(err)
			}
		}, method: "POST", path: "/v1/sites/a.com/restore", token: adminSecret,
			body: map[string]any{"at": testNow.Add(-24 * time.Hour).Format(time.RFC3339), "in_place": true}, status: 409, code: "conflict",
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				msg, _ := get(m, "error.message").(string)
				if !strings.Contains(msg, "retention") || !strings.Contains(msg, testNow.Add(-time.Hour).UTC().Format(time.RFC3339)) {
					t.Errorf("message %q does not say retention and the oldest snapshot's time", msg)
				}
			}},
		{name: "restore to a point in time of a site without snapshots", setup: func(t *testing.T, e *bkEnv) { e.place(t, "b.com", "s2", site.PhaseReady) },
			method: "POST", path: "/v1/sites/b.com/restore", token: adminSecret,
			body: map[string]any{"at": testNow.Format(time.RFC3339), "in_place": true}, status: 409, code: "conflict"},
		{name: "restore to a point in time skips another incarnation's snapshots", setup: func(t *testing.T, e *bkEnv) {
			st := *e.place(t, "b.com", "s2", site.PhaseReady)
			st.Metadata.UID = "uid-of-an-earlier-b.com"
			e.snapshot(t, "s2", &st, testNow.Add(-time.Hour))
		}, method: "POST", path: "/v1/sites/b.com/restore", token: adminSecret,
			body: map[string]any{"at": testNow.Format(time.RFC3339), "in_place": true}, status: 409, code: "conflict"},
		{name: "restore to a point in time without at", method: "POST", path: "/v1/sites/a.com/restore", token: adminSecret,
			body: map[string]any{"in_place": true}, status: 400, code: "invalid_argument"},
		{name: "restore to a point in time, at not RFC 3339", method: "POST", path: "/v1/sites/a.com/restore", token: adminSecret,
			body: map[string]any{"at": "yesterday", "in_place": true}, status: 400, code: "invalid_argument"},
		{name: "restore to a point in time, neither in place nor new domain", method: "POST", path: "/v1/sites/a.com/restore", token: adminSecret,
			body: map[string]any{"at": testNow.Format(time.RFC3339)}, status: 400, code: "invalid_argument"},
		{name: "restore to a point in time, both", method: "POST", path: "/v1/sites/a.com/restore", token: adminSecret,
			body: map[string]any{"at": testNow.Format(time.RFC3339), "in_place": true, "new_domain": "x.a.com"}, status: 400, code: "invalid_argument"},
		{name: "restore to a point in time, unknown site", method: "POST", path: "/v1/sites/x.com/restore", token: adminSecret,
			body: map[string]any{"at": testNow.Format(time.RFC3339), "in_place": true}, status: 404, code: "not_found"},
		{name: "restore to a point in time, viewer forbidden", method: "POST", path: "/v1/sites/a.com/restore", token: viewerSecret,
			body: map[string]any{"at": testNow.Format(time.RFC3339), "in_place": true}, status: 403, code: "forbidden"},

		// Verification and pruning.
		{name: "verify", method: "POST", path: "/v1/backups/verify", token: adminSecret, body: map[string]any{"site": "A.com", "full": true}, status: 202,
			fields: map[string]any{"kind": "verify", "shard": nil, "site": "a.com", "params.full": true, "params.site": "a.com"}},
		{name: "verify all, empty body", method: "POST", path: "/v1/backups/verify", token: adminSecret, status: 202, fields: map[string]any{"kind": "verify", "site": nil}},
		{name: "verify restore", method: "POST", path: "/v1/backups/verify", token: adminSecret, body: map[string]any{"site": "a.com", "restore": true}, status: 202,
			fields: map[string]any{"kind": "verify-restore", "shard": "s1", "site": "a.com"},
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				if get(m, "params.snapshot") != e.ref {
					t.Errorf("params = %v", m["params"])
				}
			}},
		{name: "verify restore without snapshots", setup: func(t *testing.T, e *bkEnv) { e.place(t, "b.com", "s2", site.PhaseReady) },
			method: "POST", path: "/v1/backups/verify", token: adminSecret, body: map[string]any{"site": "b.com", "restore": true}, status: 409, code: "conflict"},
		{name: "prune", method: "POST", path: "/v1/backups/prune", token: adminSecret, status: 202, fields: map[string]any{"kind": "prune", "phase": "Pending"},
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				code, again, _ := e.do(t, "POST", "/v1/backups/prune", adminSecret, map[string]any{"repo": "s2"})
				if code != 200 || again["id"] != m["id"] {
					t.Errorf("second prune: %d %v", code, again)
				}
			}},
		{name: "prune bad repo", method: "POST", path: "/v1/backups/prune", token: adminSecret, body: map[string]any{"repo": "../x"}, status: 400, code: "invalid_argument"},

		// Jobs.
		{name: "list jobs", setup: func(t *testing.T, e *bkEnv) {
			e.createJob(t, store.Job{ID: "job-p", Kind: store.JobPrune, CreatedAt: testNow.Add(time.Minute)})
		}, method: "GET", path: "/v1/jobs?phase=pending,Running", token: viewerSecret, status: 200,
			check: func(t *testing.T, _ *bkEnv, m map[string]any) {
				if it := items(m); len(it) != 1 || it[0]["id"] != "job-p" {
					t.Errorf("jobs = %v", m)
				}
			}},
		{name: "list jobs by site and kind", method: "GET", path: "/v1/jobs?site=a.com&kind=backup", token: viewerSecret, status: 200,
			check: func(t *testing.T, _ *bkEnv, m map[string]any) {
				if it := items(m); len(it) != 1 || it[0]["phase"] != "Succeeded" {
					t.Errorf("jobs = %v", m)
				}
			}},
		{name: "list jobs bad phase", method: "GET", path: "/v1/jobs?phase=Done", token: viewerSecret, status: 400, code: "invalid_argument"},
		{name: "get job", method: "GET", path: "/v1/jobs?kind=backup", token: viewerSecret, status: 200,
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				id := items(m)[0]["id"].(string)
				code, j, _ := e.do(t, "GET", "/v1/jobs/"+id, viewerSecret, nil)
				if code != 200 || j["kind"] != "backup" || j["phase"] != "Succeeded" {
					t.Errorf("get job: %d %v", code, j)
				}
			}},
		{name: "get unknown job", method: "GET", path: "/v1/jobs/nope", token: viewerSecret, status: 404, code: "not_found"},
		{name: "shard lists jobs forbidden", method: "GET", path: "/v1/jobs", token: shard1Secret, status: 403, code: "forbidden"},

		// Coverage.
		{name: "coverage", setup: func(t *testing.T, e *bkEnv) {
			e.place(t, "b.com", "s2", site.PhaseReady)
			if _, err := e.store.UpdateSite(context.Background(), "b.com", func(s *site.Site) error { s.Spec.Backup.EveryHours = -1; return nil }); err != nil {
				t.Fatal(err)
			}
			e.place(t, "c.com", "s2", site.PhaseReady)
			e.setNow(testNow.Add(2 * time.Hour))
		}, method: "GET", path: "/v1/backups/coverage", token: viewerSecret, status: 200,
			fields: map[string]any{"alerts": 0.0, "states.OK": 1.0, "states.NONE": 2.0},
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				it := items(m)
				if len(it) != 3 || it[0]["site"] != "a.com" || it[0]["state"] != "OK" || it[0]["last_ref"] != e.ref ||
					it[0]["every_hours"] != 24.0 || it[0]["window"] != "30h0m0s" || it[1]["state"] != "NONE" || it[1]["every_hours"] != -1.0 {
					t.Errorf("coverage = %v", it)
				}
				e.setNow(testNow.Add(40 * time.Hour))
				_, m, _ = e.do(t, "GET", "/v1/backups/coverage?limit=1", viewerSecret, nil)
				if it := items(m); len(it) != 1 || it[0]["state"] != "LATE" || it[0]["alert"] != true || m["continue"] == nil {
					t.Errorf("coverage later = %v", m)
				}
				_, m, _ = e.do(t, "GET", "/v1/backups/coverage", viewerSecret, nil)
				if m["alerts"] != 2.0 { // a.com late, c.com without a backup past its window
					t.Errorf("alerts = %v", m["alerts"])
				}
			}},

		// Disaster recovery.
		{name: "recover a lost shard", method: "POST", path: "/v1/shards/s4/recover", token: adminSecret, body: map[string]any{"to": "s2"}, status: 202,
			fields: map[string]any{"kind": "recover", "shard": nil, "params.from": "s4", "params.to": "s2"},
			check: func(t *testing.T, e *bkEnv, _ map[string]any) {
				sh, err := e.store.GetShard(context.Background(), "s4")
				if err != nil || !sh.Cordoned {
					t.Errorf("lost shard not cordoned: %+v %v", sh, err)
				}
				code, m, _ := e.do(t, "POST", "/v1/shards/s4/recover", adminSecret, map[string]any{"to": "s2"})
				if code != 409 {
					t.Errorf("second recover: %d %v", code, m)
				}
			}},
		{name: "recover a Ready shard", method: "POST", path: "/v1/shards/s1/recover", token: adminSecret, body: map[string]any{"to": "s2"}, status: 409, code: "conflict"},
		{name: "recover onto a cordoned shard", method: "POST", path: "/v1/shards/s4/recover", token: adminSecret, body: map[string]any{"to": "s3"}, status: 400, code: "invalid_argument"},
		{name: "recover onto itself", method: "POST", path: "/v1/shards/s4/recover", token: adminSecret, body: map[string]any{"to": "s4"}, status: 400, code: "invalid_argument"},
		{name: "recover unknown shard", method: "POST", path: "/v1/shards/s8/recover", token: adminSecret, body: map[string]any{"to": "s2"}, status: 404, code: "not_found"},

		// The agent protocol.
		{name: "agent jobs", setup: func(t *testing.T, e *bkEnv) {
			e.createJob(t, store.Job{ID: "job-1", Kind: store.JobBackup, Site: "a.com", Shard: "s1"})
			e.createJob(t, store.Job{ID: "job-2", Kind: store.JobBackup, Site: "b.com", Shard: "s2"})
		}, method: "GET", path: "/v1/agent/jobs", token: shard1Secret, status: 200,
			check: func(t *testing.T, _ *bkEnv, m map[string]any) {
				if it := items(m); len(it) != 1 || it[0]["id"] != "job-1" || m["revision"].(float64) < 1 {
					t.Errorf("jobs = %v", m)
				}
			}},
		{name: "agent jobs admin forbidden", method: "GET", path: "/v1/agent/jobs", token: adminSecret, status: 403, code: "forbidden"},
		{name: "agent claims a job", setup: func(t *testing.T, e *bkEnv) {
			e.createJob(t, store.Job{ID: "job-1", Kind: store.JobBackup, Site: "a.com", Shard: "s1"})
		}, method: "PUT", path: "/v1/agent/jobs/job-1", token: shard1Secret, body: map[string]any{"phase": "Running", "attempts": 1, "progress": map[string]any{"message": "started"}},
			status: 200, fields: map[string]any{"phase": "Running", "attempts": 1.0, "started_at": "2025-01-02T03:04:05Z", "progress.message": "started"}},
		{name: "agent job lifecycle", setup: func(t *testing.T, e *bkEnv) {
			e.createJob(t, store.Job{ID: "job-1", Kind: store.JobBackup, Site: "a.com", Shard: "s1"})
		}, method: "GET", path: "/v1/agent/jobs/job-1", token: shard1Secret, status: 200, fields: map[string]any{"phase": "Pending"},
			check: func(t *testing.T, e *bkEnv, _ map[string]any) {
				put := func(body map[string]any) (int, map[string]any) {
					code, m, _ := e.do(t, "PUT", "/v1/agent/jobs/job-1", shard1Secret, body)
					return code, m
				}
				if code, m := put(map[string]any{"phase": "Succeeded", "attempts": 1}); code != 409 {
					t.Errorf("success before a claim: %d %v", code, m)
				}
				if code, m := put(map[string]any{"phase": "Running", "attempts": 1}); code != 200 {
					t.Fatalf("claim: %d %v", code, m)
				}
				if code, m := put(map[string]any{"phase": "Running", "attempts": 1, "resource_version": 1}); code != 409 {
					t.Errorf("stale resource version: %d %v", code, m)
				}
				if code, m := put(map[string]any{"phase": "Running", "attempts": 1, "progress": map[string]any{"done": 5, "total": 10}}); code != 200 || get(m, "progress.done") != 5.0 {
					t.Errorf("progress: %d %v", code, m)
				}
				if code, m := put(map[string]any{"phase": "Pending", "attempts": 1}); code != 409 {
					t.Errorf("back to Pending: %d %v", code, m)
				}
				if code, m := put(map[string]any{"phase": "Running", "attempts": 5}); code != 409 {
					t.Errorf("attempts jump: %d %v", code, m)
				}
				// A restarted shard claims its Running job again.
				e.setNow(testNow.Add(time.Minute))
				if code, m := put(map[string]any{"phase": "Running", "attempts": 2}); code != 200 || m["attempts"] != 2.0 || m["started_at"] != "2025-01-02T03:05:05Z" {
					t.Errorf("re-claim: %d %v", code, m)
				}
				if code, m := put(map[string]any{"phase": "Succeeded", "attempts": 2, "result": map[string]any{"snapshot": "s1:abc"}}); code != 200 ||
					m["finished_at"] != "2025-01-02T03:05:05Z" || get(m, "result.snapshot") != "s1:abc" {
					t.Errorf("success: %d %v", code, m)
				}
				if code, m := put(map[string]any{"phase": "Succeeded", "attempts": 2, "result": map[string]any{"snapshot": "s1:abc"}}); code != 200 {
					t.Errorf("repeated success: %d %v", code, m)
				}
				if code, m := put(map[string]any{"phase": "Running", "attempts": 3}); code != 409 {
					t.Errorf("running a finished job: %d %v", code, m)
				}
			}},
		{name: "agent reports another shard's job", setup: func(t *testing.T, e *bkEnv) {
			e.createJob(t, store.Job{ID: "job-2", Kind: store.JobBackup, Site: "b.com", Shard: "s2"})
		}, method: "PUT", path: "/v1/agent/jobs/job-2", token: shard1Secret, body: map[string]any{"phase": "Running", "attempts": 1}, status: 404, code: "not_found"},
		{name: "agent reads another shard's job", setup: func(t *testing.T, e *bkEnv) {
			e.createJob(t, store.Job{ID: "job-2", Kind: store.JobBackup, Site: "b.com", Shard: "s2"})
		}, method: "GET", path: "/v1/agent/jobs/job-2", token: shard1Secret, status: 404, code: "not_found"},
		{name: "agent reports a bad phase", setup: func(t *testing.T, e *bkEnv) {
			e.createJob(t, store.Job{ID: "job-1", Kind: store.JobBackup, Site: "a.com", Shard: "s1"})
		}, method: "PUT", path: "/v1/agent/jobs/job-1", token: shard1Secret, body: map[string]any{"phase": "Done"}, status: 400, code: "invalid_argument"},

		// Backup access.
		{name: "access to the own repository", method: "GET", path: "/v1/agent/backup-access", token: shard1Secret, status: 200,
			fields: map[string]any{"repo": "s1"},
			check: func(t *testing.T, e *bkEnv, m map[string]any) {
				key, err := base64.StdEncoding.DecodeString(m["key"].(string))
				if err != nil || string(key) != string(e.repos.AccessKey("s1")) || !strings.HasSuffix(m["url"].(string), "/s1") {
					t.Errorf("access = %v", m)
				}
				r, err := repos.OpenAccess(context.Background(), repos.Access{Name: "s1", URL: m["url"].(string), Key: key}, nil)
				if err != nil {
					t.Fatalf("open with the access: %v", err)
				}
				r.Close()
			}},
		{name: "access to another shard's repository", method: "GET", path: "/v1/agent/backup-access?repo=s1", token: shard2Secret, status: 403, code: "forbidden"},
		{name: "access for a restore", setup: func(t *testing.T, e *bkEnv) {
			e.createJob(t, store.Job{ID: "job-r", Kind: store.JobRestore, Site: "a.com", Shard: "s2",
				Params: json.RawMessage(fmt.Sprintf(`{"snapshot":%q}`, e.ref))})
		}, method: "GET", path: "/v1/agent/backup-access?repo=s1", token: shard2Secret, status: 200, fields: map[string]any{"repo": "s1"}},
		{name: "access for a site from a snapshot", setup: func(t *testing.T, e *bkEnv) {
			e.do(t, "POST", "/v1/backups/"+e.ref+"/restore", adminSecret, map[string]any{"new_domain": "c.com", "shard": "s2"})
		}, method: "GET", path: "/v1/agent/backup-access?repo=s1", token: shard2Secret, status: 200, fields: map[string]any{"repo": "s1"}},
		{name: "access bad repository", method: "GET", path: "/v1/agent/backup-access?repo=..", token: shard1Secret, status: 400, code: "invalid_argument"},
		{name: "access viewer forbidden", method: "GET", path: "/v1/agent/backup-access", token: viewerSecret, status: 403, code: "forbidden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newBkEnv(t)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			path := strings.ReplaceAll(tc.path, ref, e.ref)
			code, m, _ := e.do(t, tc.method, path, tc.token, tc.body)
			if code != tc.status {
				t.Fatalf("status = %d, want %d; body %v", code, tc.status, m)
			}
			if tc.code != "" && errCode(m) != tc.code {
				t.Errorf("code = %q, want %q (%v)", errCode(m), tc.code, m)
			}
			for k, want := range tc.fields {
				if got := get(m, k); fmt.Sprint(got) != fmt.Sprint(want) && !(want == nil && got == nil) {
					t.Errorf("%s = %v, want %v", k, got, want)
				}
			}
			if tc.check != nil {
				tc.check(t, e, m)
			}
		})
	}
}

func TestBackupsWithoutRepositories(t *testing.T) {
	e := fedEnv(t)
	for _, tc := range []struct{ method, path, token string }{
		{"GET", "/v1/backups/s1:abc", viewerSecret},
		{"POST", "/v1/backups/s1:abc/restore", adminSecret},
		{"GET", "/v1/agent/backup-access", shard1Secret},
	} {
		code, m, _ := e.do(t, tc.method, tc.path, tc.token, map[string]any{"in_place": true})
		if code != 501 || errCode(m) != "unimplemented" {
			t.Errorf("%s %s: %d %v, want 501", tc.method, tc.path, code, m)
		}
	}
}

// TestAgentJobsLongPoll checks that a watch with since answers when one of
// the shard's jobs changes, and with the same list when nothing does.
func TestAgentJobsLongPoll(t *testing.T) {
	e := newBkEnv(t)
	e.createJob(t, store.Job{ID: "job-1", Kind: store.JobBackup, Site: "a.com", Shard: "s1"})
	_, m, _ := e.do(t, "GET", "/v1/agent/jobs", shard1Secret, nil)
	rev := int64(m["revision"].(float64))

	// Nothing changes: the wait runs out and the same list comes back.
	_, m, _ = e.do(t, "GET", fmt.Sprintf("/v1/agent/jobs?since=%d&wait=10ms", rev), shard1Secret, nil)
	if it := items(m); len(it) != 1 || int64(m["revision"].(float64)) != rev {
		t.Fatalf("idle watch = %v", m)
	}
	// A job for the shard is created while the watch waits.
	done := make(chan map[string]any)
	go func() {
		_, m, _ := e.do(t, "GET", fmt.Sprintf("/v1/agent/jobs?since=%d&wait=60s", rev), shard1Secret, nil)
		done <- m
	}()
	code, _, _ := e.do(t, "POST", "/v1/backups/verify", adminSecret, map[string]any{"site": "a.com", "restore": true})
	if code != 202 {
		t.Fatalf("verify restore: %d", code)
	}
	m = <-done
	// Jobs of one creation time come in ID order (random IDs): find it.
	it := items(m)
	found := len(it) == 2 && (it[0]["kind"] == "verify-restore" || it[1]["kind"] == "verify-restore")
	if !found || int64(m["revision"].(float64)) <= rev {
		t.Errorf("woken watch = %v", m)
	}
}
