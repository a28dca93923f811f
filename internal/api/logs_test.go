package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/shardlayout"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitelog"
)

// TestSiteLogs: the real handler over real log files and the real
// authorization: filters, organisation scoping, path traversal, and the
// answer where the logs are on other machines.
func TestSiteLogs(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	ctx := context.Background()
	accessDir, shardsDir := t.TempDir(), t.TempDir()
	w, err := sitelog.NewWriter(sitelog.WriterConfig{Dir: accessDir})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i, st := range []int{200, 404, 500, 200, 502} {
		for _, name := range []string{"acme.test", "globex.test"} {
			if err := w.Write(sitelog.Entry{Time: testNow.Add(time.Duration(i-5) * time.Minute), Site: name, Method: "GET",
				Path: "/" + name + "/" + string(rune('a'+i)), Status: st, RequestID: name}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// acme.test's PHP log on shard "local", where its layout puts it.
	if _, err := e.store.UpdateSite(ctx, "acme.test", func(s *site.Site) error { s.Status.Shard = "local"; return nil }); err != nil {
		t.Fatal(err)
	}
	logs := shardlayout.Layout{Name: "local", Dir: filepath.Join(shardsDir, "local")}.Site("uid-own").LogsDir()
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(logs, sitelog.PHPFile), []byte("[02-Jan-2025 03:00:00 UTC] PHP Warning:  acme warns\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// globex.test on a shard of another machine.
	if _, err := e.store.UpdateSite(ctx, "globex.test", func(s *site.Site) error { s.Status.Shard = "remote-1"; return nil }); err != nil {
		t.Fatal(err)
	}
	e.handler = New(Config{Store: e.store, Clock: func() time.Time { return testNow }, Logs: LocalLogs{AccessDir: accessDir, ShardsDir: shardsDir}})

	read := func(caller, path string) (int, []sitelog.Entry, string) {
		t.Helper()
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+f.secrets[caller])
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		var out []sitelog.Entry
		if rec.Code == http.StatusOK {
			if ct := rec.Header().Get("Content-Type"); ct != "application/x-ndjson" {
				t.Errorf("%s: content type %q", path, ct)
			}
			dec := json.NewDecoder(rec.Body)
			for dec.More() {
				var en sitelog.Entry
				if err := dec.Decode(&en); err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				out = append(out, en)
			}
		}
		return rec.Code, out, rec.Body.String()
	}
	for _, tc := range []struct {
		name, caller, path string
		code               int
		paths              []string // the entries' paths, or the PHP messages
	}{
		{"an owner reads its site's access log", "owner", "/v1/sites/acme.test/logs", 200,
			[]string{"/acme.test/a", "/acme.test/b", "/acme.test/c", "/acme.test/d", "/acme.test/e"}},
		{"status 5xx", "orgviewer", "/v1/sites/acme.test/logs?status=5xx", 200, []string{"/acme.test/c", "/acme.test/e"}},
		{"status 404 and since", "developer", "/v1/sites/acme.test/logs?status=404,200&since=4m", 200, []string{"/acme.test/b", "/acme.test/d"}},
		{"since a time, limit", "owner", "/v1/sites/acme.test/logs?since=2025-01-02T03:01:05Z&limit=1", 200, []string{"/acme.test/e"}},
		{"the PHP log", "owner", "/v1/sites/acme.test/logs?kind=php", 200, []string{"acme warns"}},
		{"a platform viewer reads any site", "viewer", "/v1/sites/globex.test/logs?status=502", 200, []string{"/globex.test/e"}},
		{"another organisation's site reads as missing", "owner", "/v1/sites/globex.test/logs", 404, nil},
		{"the partner may not read another organisation's site", "partner", "/v1/sites/globex.test/logs?kind=php", 404, nil},
		{"billing may not read logs", "billing", "/v1/sites/acme.test/logs", 403, nil},
		{"machine tokens may not read logs", "edge", "/v1/sites/acme.test/logs", 403, nil},
		{"traversal in the name", "admin", "/v1/sites/..%2F..%2Fetc/logs", 404, nil},
		{"traversal in the name, encoded dots", "admin", "/v1/sites/%2E%2E/logs", 404, nil},
		{"traversal in the kind", "admin", "/v1/sites/acme.test/logs?kind=../../../etc/passwd", 400, nil},
		{"traversal in the cursor", "admin", "/v1/sites/acme.test/logs?after=../../etc/passwd", 400, nil},
		{"traversal in since", "admin", "/v1/sites/acme.test/logs?since=../../etc", 400, nil},
		{"a bad status", "admin", "/v1/sites/acme.test/logs?status=6xx", 400, nil},
		{"status on the PHP log", "admin", "/v1/sites/acme.test/logs?kind=php&status=5xx", 400, nil},
		{"a bad limit", "admin", "/v1/sites/acme.test/logs?limit=0", 400, nil},
		{"a PHP log on another machine", "admin", "/v1/sites/globex.test/logs?kind=php", 501, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, entries, body := read(tc.caller, tc.path)
			if code != tc.code {
				t.Fatalf("%s: %d %s, want %d", tc.path, code, body, tc.code)
			}
			if tc.code != 200 {
				return
			}
			var got []string
			for _, en := range entries {
				if en.Kind == sitelog.KindPHP {
					got = append(got, en.Message)
				} else {
					got = append(got, en.Path)
				}
				if en.Cursor == "" {
					t.Errorf("entry without a cursor: %+v", en)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.paths, " ") {
				t.Errorf("%s: %v, want %v", tc.path, got, tc.paths)
			}
		})
	}
	// after= continues right after an entry.
	_, all, _ := read("owner", "/v1/sites/acme.test/logs")
	_, rest, _ := read("owner", "/v1/sites/acme.test/logs?after="+all[2].Cursor)
	if len(rest) != 2 || rest[0].Path != "/acme.test/d" {
		t.Errorf("after the third entry: %+v", rest)
	}
	// Without an edge here, access logs are elsewhere too.
	e.handler = New(Config{Store: e.store, Clock: func() time.Time { return testNow }, Logs: LocalLogs{ShardsDir: shardsDir}})
	if code, _, body := read("admin", "/v1/sites/acme.test/logs"); code != 501 || !strings.Contains(body, "edges") {
		t.Errorf("access log without an edge: %d %s", code, body)
	}
}
