package controlplane

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// pprof (`aipress up --debug-addr`) answers admin tokens only.
func TestDebugNeedsAdminToken(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "cp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	secrets := map[store.Role]string{}
	for _, role := range []store.Role{store.RoleAdmin, store.RoleViewer, store.RoleEdge} {
		secret, hash, err := store.NewTokenSecret()
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateToken(ctx, store.Token{ID: "tok-" + string(role), Name: string(role), Role: role, Hash: hash, CreatedAt: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
		secrets[role] = secret
	}
	srv := httptest.NewServer(DebugHandler(st, slog.New(slog.NewTextHandler(os.Stderr, nil))))
	defer srv.Close()
	tests := []struct {
		name, path, auth string
		want             int
		body             string
	}{
		{"no token", "/debug/pprof/", "", 401, ""},
		{"no token cmdline", "/debug/pprof/cmdline", "", 401, ""},
		{"not bearer", "/debug/pprof/", "Basic YWRtaW46eA==", 401, ""},
		{"wrong token", "/debug/pprof/", "Bearer aip_000000000000000000000000000000000000000000000000", 401, ""},
		{"admin secret without scheme", "/debug/pprof/", secrets[store.RoleAdmin], 401, ""},
		{"viewer token", "/debug/pprof/", "Bearer " + secrets[store.RoleViewer], 403, ""},
		{"edge token", "/debug/pprof/cmdline", "Bearer " + secrets[store.RoleEdge], 403, ""},
		{"admin token", "/debug/pprof/", "Bearer " + secrets[store.RoleAdmin], 200, "goroutine"},
		{"admin token cmdline", "/debug/pprof/cmdline", "bearer " + secrets[store.RoleAdmin], 200, os.Args[0]},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || (tc.body != "" && !strings.Contains(string(b), tc.body)) {
			t.Errorf("%s: GET %s = %d %.80q, want %d with %q", tc.name, tc.path, resp.StatusCode, b, tc.want, tc.body)
		}
		if tc.want != 200 && strings.Contains(string(b), "goroutine") {
			t.Errorf("%s: a refused request got profile data", tc.name)
		}
	}
}

// `aipress server --debug-addr` serves pprof on its own listener, to the
// admin token of client.json only.
func TestServerDebugAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		done <- Run(ctx, Config{DataDir: dir, APIAddr: "127.0.0.1:0", DebugAddr: addr, HeartbeatTimeout: 30 * time.Second,
			Ready: func(url string) { ready <- url }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		done <- err
		t.Fatalf("server stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("server did not start")
	}
	cfg, err := apiclient.ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		auth string
		want int
	}{{"", http.StatusUnauthorized}, {"Bearer " + cfg.Token, http.StatusOK}} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/debug/pprof/cmdline", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET /debug/pprof/cmdline (token: %t): %d, want %d", tc.auth != "", resp.StatusCode, tc.want)
		}
	}
}
