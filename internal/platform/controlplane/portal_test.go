package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The control plane that `aipress up` and `aipress server` assemble
// (Open) serves the embedded portal at / and the API beside
// it; its first start gives admin@localhost a password for the portal.
func TestControlPlaneServesPortal(t *testing.T) {
	dir := t.TempDir()
	cp, err := Open(context.Background(), Options{
		DataDir: dir, APIURL: "http://127.0.0.1:7070", Logger: slog.New(slog.DiscardHandler), Version: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	srv := httptest.NewServer(cp.Handler)
	defer srv.Close()
	get := func(path string) (int, string, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	index, err := os.ReadFile(filepath.Join("..", "..", "portal", "dist", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/sites/blog.localhost"} {
		if code, ct, body := get(p); code != 200 || !strings.HasPrefix(ct, "text/html") || body != string(index) {
			t.Errorf("GET %s: %d %q %.100s, want the portal's index.html", p, code, ct, body)
		}
	}
	if code, ct, _ := get("/v1/nope"); code != 404 || !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET /v1/nope: %d %q, want the API's JSON 404", code, ct)
	}
	// The first sign-in: admin@localhost with the password of the file.
	if cp.adminPasswordFile != filepath.Join(dir, AdminPasswordFile) {
		t.Fatalf("admin password file %q", cp.adminPasswordFile)
	}
	pw, err := os.ReadFile(cp.adminPasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		password string
		want     int
	}{{"wrong password", http.StatusUnauthorized}, {string(pw), http.StatusOK}} {
		body, _ := json.Marshal(map[string]string{"email": AdminEmail, "password": tc.password})
		req, _ := http.NewRequest("POST", srv.URL+"/v1/auth/login", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", srv.URL)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("sign in with %q: %d %s, want %d", tc.password, resp.StatusCode, b, tc.want)
		}
	}
}
