package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/portal"
)

// The API server serves the embedded portal (Config.Portal) for GET and
// HEAD outside /v1/ and /metrics; everything else keeps its API answer.
func TestPortalServing(t *testing.T) {
	e := newEnv(t)
	web, err := portal.New()
	if err != nil {
		t.Fatal(err)
	}
	index, err := os.ReadFile(filepath.Join("..", "portal", "dist", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	h := New(Config{Store: e.store, Placer: StaticPlacer("local"), Portal: web,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up 1\n") })})

	isIndex := func(rec *httptest.ResponseRecorder) bool {
		return rec.Code == http.StatusOK && strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") &&
			rec.Body.String() == string(index)
	}
	isJSONError := func(rec *httptest.ResponseRecorder, status int, code string) bool {
		var m map[string]any
		if rec.Code != status || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") ||
			json.Unmarshal(rec.Body.Bytes(), &m) != nil {
			return false
		}
		return errCode(m) == code
	}
	tests := []struct {
		name, method, path, token string
		check                     func(*httptest.ResponseRecorder) bool
	}{
		{"root", "GET", "/", "", isIndex},
		{"a page of the app", "GET", "/sites/x.example", "", isIndex},
		{"a deep page", "GET", "/sites/x.example/backups", "", isIndex},
		{"head", "HEAD", "/", "", func(r *httptest.ResponseRecorder) bool { return r.Code == http.StatusOK }},
		{"unknown API path", "GET", "/v1/nope", "", func(r *httptest.ResponseRecorder) bool { return isJSONError(r, 404, CodeNotFound) }},
		{"bare /v1", "GET", "/v1", "", func(r *httptest.ResponseRecorder) bool { return isJSONError(r, 404, CodeNotFound) }},
		{"an API route", "GET", "/v1/sites", adminSecret, func(r *httptest.ResponseRecorder) bool {
			return r.Code == 200 && strings.HasPrefix(r.Header().Get("Content-Type"), "application/json")
		}},
		{"POST / is not the portal", "POST", "/", "", func(r *httptest.ResponseRecorder) bool {
			return isJSONError(r, 404, CodeNotFound) && !strings.Contains(r.Body.String(), "<html")
		}},
		{"DELETE on a page is not the portal", "DELETE", "/sites/x.example", "", func(r *httptest.ResponseRecorder) bool {
			return isJSONError(r, 404, CodeNotFound)
		}},
		{"metrics with a token", "GET", "/metrics", viewerSecret, func(r *httptest.ResponseRecorder) bool {
			return r.Code == 200 && r.Body.String() == "up 1\n"
		}},
		{"metrics without one", "GET", "/metrics", "", func(r *httptest.ResponseRecorder) bool {
			return r.Code == http.StatusUnauthorized && !strings.Contains(r.Body.String(), "<html")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if !tt.check(rec) {
				t.Errorf("%s %s: %d %q %.200s", tt.method, tt.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
			}
		})
	}
}
