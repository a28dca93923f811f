package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/artefact/catalogtest"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

func TestArtefactUploads(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	ctx := context.Background()
	if _, err := e.store.UpdateSite(ctx, "acme.test", func(s *site.Site) error { s.Status.Shard = "local"; return nil }); err != nil {
		t.Fatal(err)
	}
	hello := catalogtest.Zip(catalogtest.HelloPlugin, catalogtest.PluginFiles(catalogtest.HelloPlugin, "1.0"))
	theme := catalogtest.Zip(catalogtest.TestTheme, catalogtest.ThemeFiles(catalogtest.TestTheme, "2.0"))
	sha := catalogtest.SHA256(hello)
	owner := f.secrets["owner"]

	tests := []struct {
		name, query, caller string
		body                []byte
		status              int
		want                string // in the body
	}{
		{"plugin", "?org=acme", "owner", hello, http.StatusCreated, `"version": "1.0"`},
		{"again", "?org=acme", "owner", hello, http.StatusOK, sha},
		{"the caller's only organisation", "", "developer", hello, http.StatusOK, `"org": "acme"`},
		{"theme detected", "?org=acme", "owner", theme, http.StatusCreated, `"kind": "theme"`},
		{"kind forced", "?org=acme&kind=theme", "owner", hello, http.StatusUnprocessableEntity, "Theme Name"},
		{"bad kind", "?org=acme&kind=module", "owner", hello, http.StatusBadRequest, "kind must be"},
		{"zip-slip", "?org=acme", "owner", catalogtest.HostileZip(catalogtest.SlipPlugin), http.StatusUnprocessableEntity, "leaves the archive"},
		{"symlink", "?org=acme", "owner", catalogtest.HostileZip(catalogtest.SymlinkPlugin), http.StatusUnprocessableEntity, "symbolic link"},
		{"PHP outside", "?org=acme", "owner", catalogtest.HostileZip(catalogtest.OutsidePlugin), http.StatusUnprocessableEntity, "PHP outside"},
		{"not a zip", "?org=acme", "owner", []byte("hello"), http.StatusUnprocessableEntity, "not a zip"},
		{"empty", "?org=acme", "owner", nil, http.StatusBadRequest, "empty"},
		{"another organisation", "?org=globex", "owner", hello, http.StatusNotFound, "not found"},
		{"org viewer", "?org=acme", "orgviewer", hello, http.StatusForbidden, "may not"},
		{"shard", "?org=acme", "shard", hello, http.StatusForbidden, "may not"},
		{"admin in any", "?org=globex", "admin", hello, http.StatusCreated, `"org": "globex"`},
	}
	for _, tt := range tests {
		code, _, body := doRaw(e, "POST", "/v1/artefacts"+tt.query, f.secrets[tt.caller], tt.body)
		if code != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %s, want %d with %q", tt.name, code, body, tt.status, tt.want)
		}
	}

	// Lists: one page at a time, the organisation's only.
	code, m, _ := e.do(t, "GET", "/v1/artefacts?org=acme&limit=1", owner, nil)
	items, _ := m["items"].([]any)
	cont, _ := m["continue"].(string)
	if code != http.StatusOK || len(items) != 1 || cont == "" {
		t.Fatalf("first page: %d %v", code, m)
	}
	code, m, _ = e.do(t, "GET", "/v1/artefacts?org=acme&limit=1&continue="+cont, owner, nil)
	items2, _ := m["items"].([]any)
	if code != http.StatusOK || len(items2) != 1 || m["continue"] != nil {
		t.Fatalf("second page: %d %v", code, m)
	}
	names := items[0].(map[string]any)["name"].(string) + " " + items2[0].(map[string]any)["name"].(string)
	if names != "aipress-hello aipress-theme" && names != "aipress-theme aipress-hello" {
		t.Errorf("listed %s", names)
	}
	if code, m, _ := e.do(t, "GET", "/v1/artefacts?org=globex", owner, nil); code != http.StatusNotFound {
		t.Errorf("another organisation's list: %d %v", code, m)
	}
	if code, _, _ := e.do(t, "GET", "/v1/artefacts?org=acme", f.secrets["orgviewer"], nil); code != http.StatusOK {
		t.Errorf("org viewer's list: %d", code)
	}
	if code, _, _ := e.do(t, "GET", "/v1/artefacts?org=acme&continue=!!", owner, nil); code != http.StatusBadRequest {
		t.Errorf("bad continue: %d", code)
	}

	srv := &server{cfg: Config{Uploads: e.uploads}}
	for _, tc := range []struct {
		org, sha string
		want     bool
	}{{"acme", sha, true}, {"globex", sha, true}, {"resell", sha, false}, {"acme", strings.Repeat("0", 64), false}, {"../acme", sha, false}} {
		got, err := srv.artefactUploaded(ctx, tc.org, tc.sha)
		if err != nil || got != tc.want {
			t.Errorf("artefactUploaded(%s, %s): %v %v, want %v", tc.org, tc.sha[:8], got, err, tc.want)
		}
	}

	// The shard that hosts an acme site fetches an upload of acme only
	// while a site there needs it: its spec names it, or a staged update
	// in progress does.
	fetch := func() int {
		t.Helper()
		code, _, body := doRaw(e, "GET", "/v1/agent/artefacts/"+sha, f.secrets["shard"], nil)
		if code == http.StatusOK && body != string(hello) {
			t.Errorf("agent fetch: %d bytes, not the upload", len(body))
		}
		return code
	}
	if code := fetch(); code != http.StatusNotFound {
		t.Errorf("agent fetch of an upload no site of the shard names: %d", code)
	}
	upload := []site.Extension{{Name: catalogtest.HelloPlugin, Source: site.ExtensionSource{Type: site.SourceUpload, SHA256: sha}}}
	if _, err := e.store.UpdateSite(ctx, "acme.test", func(s *site.Site) error { s.Spec.Plugins = upload; return nil }); err != nil {
		t.Fatal(err)
	}
	if code := fetch(); code != http.StatusOK {
		t.Errorf("agent fetch of an upload the site's spec names: %d", code)
	}
	if _, err := e.store.UpdateSite(ctx, "acme.test", func(s *site.Site) error { s.Spec.Plugins = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	acme, err := e.store.GetSite(ctx, "acme.test")
	if err != nil {
		t.Fatal(err)
	}
	params, _ := json.Marshal(store.UpdateParams{Plugins: upload})
	for _, j := range []store.Job{
		{ID: "job-update-old", Kind: store.JobUpdate, Site: "acme.test", SiteUID: "uid-of-an-earlier-acme", Phase: store.JobPending},
		{ID: "job-update", Kind: store.JobUpdate, Site: "acme.test", SiteUID: acme.Metadata.UID, Phase: store.JobFailed},
	} {
		j.Params, j.CreatedAt = params, testNow
		if err := e.store.CreateJob(ctx, &j); err != nil {
			t.Fatal(err)
		}
	}
	if code := fetch(); code != http.StatusNotFound {
		t.Errorf("agent fetch of an upload only an ended update (or another site's) names: %d", code)
	}
	if _, err := e.store.UpdateJob(ctx, "job-update", func(j *store.Job) error { j.Phase, j.FinishedAt = store.JobRunning, nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if code := fetch(); code != http.StatusOK {
		t.Errorf("agent fetch of an upload a running update names: %d", code)
	}
	for _, bad := range []string{strings.Repeat("0", 64), "not-a-sha"} {
		if code, _, _ := doRaw(e, "GET", "/v1/agent/artefacts/"+bad, f.secrets["shard"], nil); code != http.StatusNotFound {
			t.Errorf("agent fetch of %s: %d", bad, code)
		}
	}
	// Not once acme has no site there (and globex never had).
	if _, err := e.store.UpdateSite(ctx, "acme.test", func(s *site.Site) error { s.Status.Shard = "elsewhere"; return nil }); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := doRaw(e, "GET", "/v1/agent/artefacts/"+sha, f.secrets["shard"], nil); code != http.StatusNotFound {
		t.Errorf("agent fetch without a site of the organisation: %d", code)
	}

	// The size limit.
	small := New(Config{Store: e.store, Uploads: e.uploads, UploadLimits: artefact.Limits{MaxArchiveBytes: 100}})
	req := httptest.NewRequest("POST", "/v1/artefacts?org=acme", strings.NewReader(string(hello)))
	req.Header.Set("Authorization", "Bearer "+owner)
	rec := httptest.NewRecorder()
	small.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("over the limit: %d %s", rec.Code, rec.Body)
	}
}

// doRaw sends body as is and returns the status, the decoded body and the
// raw body.
func doRaw(e *env, method, path, token string, body []byte) (int, map[string]any, string) {
	req := httptest.NewRequest(method, path, strings.NewReader(string(body)))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/zip")
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec.Code, nil, rec.Body.String()
}
