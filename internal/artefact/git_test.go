package artefact_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/artefact/catalogtest"
	"github.com/aipress/aipress/internal/site"
)

// gitRepo is a real repository (git CLI) served over smart HTTP by
// git http-backend.
type gitRepo struct {
	t        *testing.T
	work     string
	url      string
	requests atomic.Int64
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	backend, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git:", err)
	}
	root := t.TempDir()
	r := &gitRepo{t: t, work: filepath.Join(root, "work")}
	r.git(root, "init", "-q", "-b", "main", r.work)
	r.git(r.work, "config", "user.email", "t@example.com")
	r.git(r.work, "config", "user.name", "T")
	h := &cgi.Handler{Path: backend, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/work/.git"
	return r
}

func (r *gitRepo) git(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// gitIn runs git in the work tree with stdin, returning its output.
func (r *gitRepo) gitIn(stdin string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.work
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.work)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (path → content; "" removes) and commits them,
// returning the commit id.
func (r *gitRepo) commit(files map[string]string) string {
	r.t.Helper()
	for p, c := range files {
		full := filepath.Join(r.work, p)
		if c == "" {
			os.Remove(full)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git(r.work, "add", "-A")
	r.git(r.work, "commit", "-q", "-m", "change", "--allow-empty")
	return r.git(r.work, "rev-parse", "HEAD")
}

func gitRef(url, ref, path string) artefact.Ref {
	return artefact.Ref{Kind: artefact.Plugin, Name: catalogtest.HelloPlugin,
		Source: site.ExtensionSource{Type: site.SourceGit, URL: url, Ref: ref, Path: path}}
}

func TestGitSource(t *testing.T) {
	repo := newGitRepo(t)
	files := map[string]string{"README.md": "repo readme"}
	for p, c := range hello("1.0") {
		files["plugins/aipress-hello/"+p] = c
	}
	c1 := repo.commit(files)
	s, _ := newStore(t, nil, artefact.Limits{})
	ctx := context.Background()

	a, err := s.Ensure(ctx, gitRef(repo.url, "main", "plugins/aipress-hello"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != "1.0" || a.Main != "aipress-hello.php" || a.Files != 2 {
		t.Errorf("artefact %+v", a)
	}
	if _, err := os.Stat(filepath.Join(a.Dir, "aipress-hello.php")); err != nil {
		t.Error(err)
	}
	// The same commit by id: the same digest and no network at all.
	before := repo.requests.Load()
	b, err := s.Ensure(ctx, gitRef(repo.url, c1, "plugins/aipress-hello"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Digest != a.Digest || repo.requests.Load() != before {
		t.Errorf("by commit id: digest %s (want %s), %d requests", b.Digest, a.Digest, repo.requests.Load()-before)
	}
	// A later commit that leaves the folder alone: a listing and a clone,
	// but the same tree, so the same digest.
	repo.commit(map[string]string{"README.md": "changed"})
	c, err := s.Ensure(ctx, gitRef(repo.url, "main", "/plugins/aipress-hello/"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Digest != a.Digest {
		t.Errorf("same tree, other commit: digest %s, want %s", c.Digest, a.Digest)
	}
	// A tag and a short commit id.
	repo.git(repo.work, "tag", "-a", "v1", "-m", "v1", c1)
	for _, r := range []string{"v1", c1[:10]} {
		d, err := s.Ensure(ctx, gitRef(repo.url, r, "plugins/aipress-hello"))
		if err != nil {
			t.Fatalf("ref %s: %v", r, err)
		}
		if d.Digest != a.Digest {
			t.Errorf("ref %s: digest %s, want %s", r, d.Digest, a.Digest)
		}
	}
	// A change in the folder: another digest.
	repo.commit(map[string]string{"plugins/aipress-hello/aipress-hello.php": hello("2.0")["aipress-hello.php"]})
	e, err := s.Ensure(ctx, gitRef(repo.url, "main", "plugins/aipress-hello"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Digest == a.Digest || e.Version != "2.0" {
		t.Errorf("changed folder: %+v", e)
	}

	// Refusals.
	// A tree with a .git folder (git itself never commits one; a
	// hand-made tree can): refused, whatever its case.
	for _, dotgit := range []string{".git", ".GIT"} {
		blob := repo.gitIn("hello\n", "hash-object", "-w", "--stdin")
		cfg := repo.gitIn("100644 blob "+blob+"\tconfig\n", "mktree")
		php := repo.gitIn(pluginPHP, "hash-object", "-w", "--stdin")
		folder := repo.gitIn("040000 tree "+cfg+"\t"+dotgit+"\n100644 blob "+php+"\tp.php\n", "mktree")
		top := repo.gitIn("040000 tree "+folder+"\tp\n", "mktree")
		commit := repo.gitIn("", "commit-tree", top, "-m", "dotgit")
		repo.git(repo.work, "update-ref", "refs/heads/dotgit", commit)
		ref := artefact.Ref{Kind: artefact.Plugin, Name: "p", Source: site.ExtensionSource{Type: site.SourceGit, URL: repo.url, Ref: "dotgit", Path: "p"}}
		if _, err := s.Ensure(ctx, ref); !errors.Is(err, artefact.ErrRefused) || !strings.Contains(err.Error(), dotgit) {
			t.Errorf("a %s folder in the tree: %v", dotgit, err)
		}
	}
	if _, err := s.Ensure(ctx, gitRef(repo.url, "no-such-branch", "")); !errors.Is(err, artefact.ErrNotFound) {
		t.Errorf("missing branch: %v", err)
	}
	if _, err := s.Ensure(ctx, gitRef(repo.url, "main", "no/such/path")); !errors.Is(err, artefact.ErrNotFound) {
		t.Errorf("missing path: %v", err)
	}
	if _, err := s.Ensure(ctx, gitRef(repo.url, "main", "")); !errors.Is(err, artefact.ErrRefused) || !strings.Contains(err.Error(), "Plugin Name") {
		t.Errorf("the repository's root is no plugin: %v", err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(repo.work, "plugins/aipress-hello/passwd")); err != nil {
		t.Fatal(err)
	}
	repo.commit(nil)
	_, err = s.Ensure(ctx, gitRef(repo.url, "main", "plugins/aipress-hello"))
	if !errors.Is(err, artefact.ErrRefused) || !strings.Contains(err.Error(), `"aipress-hello/passwd": a symbolic link`) {
		t.Errorf("symlink in the tree: %v", err)
	}
	if _, err := s.Ensure(ctx, gitRef("file://"+repo.work, "main", "")); err == nil {
		t.Error("a file:// URL was accepted")
	}
	lim, _ := newStore(t, nil, artefact.Limits{MaxFiles: 2})
	if _, err := lim.Ensure(ctx, gitRef(repo.url, c1, "plugins/aipress-hello")); !errors.Is(err, artefact.ErrRefused) {
		t.Errorf("over the file limit: %v", err)
	}
}
