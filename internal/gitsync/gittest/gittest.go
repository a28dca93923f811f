// Package gittest serves real git repositories in tests: a bare repository
// over git's smart HTTP protocol (git http-backend through net/http/cgi),
// optionally behind HTTP basic auth, and a work tree that commits and
// pushes to it with the git CLI.
package gittest

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Repo is a real bare repository served over git's smart HTTP protocol
// (git http-backend through net/http/cgi), and a work tree that pushes to
// it.
type Repo struct {
	t   *testing.T
	URL string // http://127.0.0.1:port/repo.git
	// Work is the work tree; Bare the served repository.
	Work string
	Bare string
}

// New serves a new repository; with user set, every request needs
// HTTP basic auth user:pass.
func New(t *testing.T, user, pass string) *Repo {
	t.Helper()
	backend := "/usr/lib/git-core/git-http-backend"
	if out, err := exec.Command("git", "--exec-path").Output(); err == nil {
		backend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	}
	root := t.TempDir()
	g := &Repo{t: t, Work: filepath.Join(root, "work"), Bare: filepath.Join(root, "srv", "repo.git")}
	g.Git(root, "init", "-q", "--bare", "-b", "main", g.Bare)
	g.Git(root, "init", "-q", "-b", "main", g.Work)
	var h http.Handler = &cgi.Handler{Path: backend, Root: "/",
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(g.Bare), "GIT_HTTP_EXPORT_ALL=1"}}
	if user != "" {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	g.URL = srv.URL + "/repo.git"
	return g
}

// Git runs git with args in dir (a fixed identity, no system or user
// configuration) and returns its trimmed output; a failure fails the test.
func (g *Repo) Git(dir string, args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Commit writes files (path → content; "" removes the file), commits them
// with msg, pushes to the served repository and returns the commit's hash.
func (g *Repo) Commit(msg string, files map[string]string) string {
	g.t.Helper()
	for p, content := range files {
		full := filepath.Join(g.Work, p)
		if content == "" {
			if err := os.Remove(full); err != nil {
				g.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
	g.Git(g.Work, "add", "-A")
	g.Git(g.Work, "commit", "-q", "--allow-empty", "-m", msg)
	g.Git(g.Work, "push", "-q", g.Bare, "main")
	return g.Git(g.Work, "rev-parse", "HEAD")
}
