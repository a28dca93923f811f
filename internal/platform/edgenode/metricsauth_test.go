package edgenode

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/metrics"
)

// The edge's metrics listener answers only the bearer token of its token
// file, which is made once (0600) and kept across restarts.
func TestEdgeMetricsNeedToken(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	m := metrics.New()
	h, tokenFile, err := metricsHandler(m.Handler(), dir, "", log)
	if err != nil {
		t.Fatal(err)
	}
	if tokenFile != filepath.Join(dir, MetricsTokenFile) {
		t.Errorf("token file %s", tokenFile)
	}
	fi, err := os.Stat(tokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v", err, fi.Mode())
	}
	b, _ := os.ReadFile(tokenFile)
	token := strings.TrimSpace(string(b))
	if len(token) < 40 {
		t.Fatalf("token %q too short", token)
	}
	// A restart keeps the token (Prometheus's file stays valid).
	if _, _, err := metricsHandler(m.Handler(), dir, "", log); err != nil {
		t.Fatal(err)
	}
	if b2, _ := os.ReadFile(tokenFile); string(b2) != string(b) {
		t.Errorf("the token changed across a restart: %q, then %q", b, b2)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	tests := []struct {
		name, method, path, auth string
		want                     int
	}{
		{"no token", "GET", "/metrics", "", 401},
		{"wrong token", "GET", "/metrics", "Bearer " + token[:len(token)-1] + "x", 401},
		{"token prefix", "GET", "/metrics", "Bearer " + token[:len(token)-1], 401},
		{"not bearer", "GET", "/metrics", "Basic " + token, 401},
		{"right token", "GET", "/metrics", "Bearer " + token, 200},
		{"right token, other path", "GET", "/debug/pprof/", "Bearer " + token, 404},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s %s = %d, want %d", tc.name, tc.method, tc.path, resp.StatusCode, tc.want)
		}
		if metricsBody := strings.Contains(string(body), "go_goroutines"); metricsBody != (tc.want == 200) {
			t.Errorf("%s: metrics in the body: %v", tc.name, metricsBody)
		}
		if tc.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
	}
}

// An operator-provided token file (a mounted secret) is used as it is; one
// too short to be a secret is refused.
func TestEdgeMetricsTokenFile(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	given := filepath.Join(dir, "given")
	if err := os.WriteFile(given, []byte("  s3cr3t-from-the-operator-0123456789\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	h, file, err := metricsHandler(metrics.New().Handler(), dir, given, log)
	if err != nil || file != given {
		t.Fatalf("given token file: %v, %s", err, file)
	}
	if _, err := os.Stat(filepath.Join(dir, MetricsTokenFile)); err == nil {
		t.Error("a default token file was made although one was given")
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Authorization", "Bearer s3cr3t-from-the-operator-0123456789")
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("given token: %d", rec.Code)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := metricsHandler(metrics.New().Handler(), dir, short, log); err == nil {
		t.Error("a 3-character token was accepted")
	}
}
