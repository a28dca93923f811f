package cli

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/liveimport/sshtest"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"golang.org/x/crypto/ssh"
)

// fakeAPI is the two AIPress APIs of a cut-over: the destination's
// imports and re-syncs, and the source's freeze.
type fakeAPI struct {
	mu        sync.Mutex
	calls     []string
	entries   map[string][]string // request path → archive entries
	refuse    bool                // the re-sync is refused (422)
	frozenGen int64
}

func (f *fakeAPI) handler(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls = append(f.calls, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		reply := func(code int, v any) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(v)
		}
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/imports", "POST /v1/sites/new.localhost/resync":
			names, err := tarNames(r.Body)
			if err != nil {
				reply(400, map[string]any{"error": map[string]string{"code": "bad_request", "message": "read the archive: " + err.Error()}})
				return
			}
			f.mu.Lock()
			f.entries[r.URL.Path] = names
			f.mu.Unlock()
			if r.URL.Path == "/v1/imports" {
				reply(201, map[string]any{"domain": "new.localhost", "inspection": map[string]any{"old_url": "https://old.example", "table_prefix": "wp_"}})
				return
			}
			if f.refuse {
				reply(422, map[string]any{"error": map[string]string{"code": "invalid_argument", "message": "re-sync refused: test"}})
				return
			}
			reply(202, map[string]any{"job": store.Job{ID: "job-1", Kind: store.JobResync, Phase: store.JobPending}})
		case "GET /v1/jobs/job-1":
			reply(200, store.Job{ID: "job-1", Kind: store.JobResync, Phase: store.JobSucceeded, Result: json.RawMessage(`{"files":1,"deleted":[],"posts":3,"duration_ns":1000000}`)})
		case "GET /v1/sites/new.localhost":
			reply(200, site.Site{Metadata: site.Metadata{Name: "new.localhost", Generation: 1}, Status: site.Status{Phase: site.PhaseReady, ObservedGeneration: 1}})
		case "POST /v1/sites/old.example/freeze":
			f.mu.Lock()
			f.frozenGen = 2
			f.mu.Unlock()
			reply(200, site.Site{Metadata: site.Metadata{Name: "old.example", Generation: 2}})
		case "POST /v1/sites/old.example/unfreeze":
			reply(200, site.Site{Metadata: site.Metadata{Name: "old.example", Generation: 3}})
		case "GET /v1/sites/old.example":
			s := site.Site{Metadata: site.Metadata{Name: "old.example", Generation: 2}}
			s.Status.SetCondition(site.Condition{Type: site.CondWritesFrozen, Status: "True", ObservedGeneration: 2}, time.Now())
			reply(200, s)
		default:
			reply(404, map[string]any{"error": map[string]string{"code": "not_found", "message": r.URL.Path}})
		}
	})
}

func tarNames(r io.Reader) ([]string, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		names = append(names, h.Name)
	}
}

// TestSiteImportLive: 'site import --ssh' against an SSH server started
// here (the server's "mariadb-dump" is a script that records how it was
// called) and a fake API: the archive streamed to POST /v1/imports, the
// listing kept, a --final re-sync that freezes the source AIPress first,
// reports the freeze, and leaves it frozen; a refused final sync gives
// the source its writes back; a wrong host key is refused before
// anything is sent.
func TestSiteImportLive(t *testing.T) {
	dir := t.TempDir()
	docroot := filepath.Join(dir, "www")
	for name, body := range map[string]string{
		"wp-includes/version.php":  "<?php\n$wp_version = '6.1.1';\n",
		"wp-content/uploads/a.txt": "a\n",
		"wp-config.php":            "<?php\ndefine('DB_NAME', 'oldwp');\ndefine('DB_USER', 'olduser');\ndefine('DB_PASSWORD', 's3cret pass');\ndefine('DB_HOST', 'localhost');\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(docroot, name)), 0o755)
		os.WriteFile(filepath.Join(docroot, name), []byte(body), 0o644)
	}
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	dump := "/*!40101 SET NAMES utf8mb4 */;\nCREATE TABLE `wp_options` (`option_id` int, `option_name` varchar(191), `option_value` longtext, `autoload` varchar(20));\nCREATE TABLE `wp_posts` (`ID` int);\n" +
		"INSERT INTO `wp_options` VALUES (1,'siteurl','https://old.example','yes'),(2,'home','https://old.example','yes');\n"
	script := fmt.Sprintf("#!/bin/sh\nif [ -e %s/fail ]; then echo \"Access denied for user 'olduser'\" >&2; exit 2; fi\necho \"$@\" > %s/args\ncat > %s/options\ncat <<'EOF'\n%sEOF\n", dir, dir, dir, dump)
	os.WriteFile(filepath.Join(bin, "mariadb-dump"), []byte(script), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))

	srv, err := sshtest.Start(sshtest.Config{User: "deploy", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	api := &fakeAPI{entries: map[string][]string{}}
	hs := httptest.NewServer(api.handler(t))
	defer hs.Close()
	env := map[string]string{"SSH_PW": "pw", "OLD_TOKEN": "tok"}
	d := deps{getenv: func(k string) string { return env[k] }, now: time.Now}
	state := filepath.Join(dir, "state.json")
	fp := ssh.FingerprintSHA256(srv.HostKey)
	base := []string{"site", "import", "--url", hs.URL, "--token", "t", "--ssh", fmt.Sprintf("deploy@127.0.0.1:%d:%s", srv.Port(), docroot),
		"--ssh-password-env", "SSH_PW", "--ssh-host-key", fp, "--state", state}

	// The dry run pulls and inspects here; nothing is sent, nothing kept.
	out, _, err := runCmd(t, d, append(base, "--domain", "new.localhost", "--dry-run")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"files       2 listed, 2 pulled", "URL         https://old.example → the new site's (new.localhost)", "WordPress   6.1.1", "nothing sent"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run: no %q in\n%s", want, out)
		}
	}
	if len(api.calls) != 0 {
		t.Errorf("the dry run called the API: %q", api.calls)
	}
	if _, err := os.Stat(state); err == nil {
		t.Error("the dry run kept a listing")
	}

	out, _, err = runCmd(t, d, append(base, "--domain", "new.localhost", "--wait=false")...)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"database.sql", "wp-content/", "wp-content/uploads/", "wp-content/uploads/a.txt", "wp-includes/", "wp-includes/version.php", "aipress-live.json"}; !slices.Equal(api.entries["/v1/imports"], want) {
		t.Errorf("the archive sent: %q, want %q", api.entries["/v1/imports"], want)
	}
	if !strings.Contains(out, "imported https://old.example → new.localhost") {
		t.Errorf("output: %s", out)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	opts, _ := os.ReadFile(filepath.Join(dir, "options"))
	if strings.Contains(string(args), "s3cret") || !strings.Contains(string(args), "--defaults-extra-file=/dev/stdin") || !strings.Contains(string(opts), `password="s3cret pass"`) {
		t.Errorf("the dump's arguments %q and options %q: the password belongs in the options only", args, opts)
	}
	if b, err := os.ReadFile(state); err != nil || !strings.Contains(string(b), "wp-content/uploads/a.txt") {
		t.Errorf("state: %v %s", err, b)
	}

	// The final sync: the source frozen first, the freeze reported, and
	// left frozen.
	os.WriteFile(filepath.Join(docroot, "wp-content", "uploads", "b.txt"), []byte("b\n"), 0o644)
	api.calls = nil
	final := append(base, "--domain", "new.localhost", "--final", "--source-api", hs.URL, "--source-token-env", "OLD_TOKEN", "--source-site", "old.example", "-o", "json")
	out, _, err = runCmd(t, d, final...)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Resync bool `json:"resync"`
		Freeze *struct {
			Duration time.Duration `json:"duration_ns"`
		} `json:"freeze"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.Resync || res.Freeze == nil || res.Freeze.Duration <= 0 {
		t.Errorf("--final output: %v %s", err, out)
	}
	freeze, resync := slices.Index(api.calls, "POST /v1/sites/old.example/freeze"), slices.Index(api.calls, "POST /v1/sites/new.localhost/resync")
	if freeze < 0 || resync < freeze || slices.Contains(api.calls, "POST /v1/sites/old.example/unfreeze") {
		t.Errorf("calls %q: want the freeze before the re-sync, and no unfreeze", api.calls)
	}
	if got := api.entries["/v1/sites/new.localhost/resync"]; !slices.Contains(got, "wp-content/uploads/b.txt") || slices.Contains(got, "wp-content/uploads/a.txt") {
		t.Errorf("the delta holds %q: want b.txt only", got)
	}

	// A final sync that fails gives the source its writes back.
	api.refuse, api.calls = true, nil
	os.WriteFile(filepath.Join(docroot, "wp-content", "uploads", "c.txt"), []byte("c\n"), 0o644)
	if _, _, err := runCmd(t, d, final...); err == nil || !strings.Contains(err.Error(), "re-sync refused") {
		t.Errorf("a refused final sync: %v", err)
	}
	if !slices.Contains(api.calls, "POST /v1/sites/old.example/unfreeze") {
		t.Errorf("calls %q: the source was not unfrozen after the failure", api.calls)
	}

	// A pull that fails (the dump refused on the server): the error says
	// why, and the API read no archive.
	os.WriteFile(filepath.Join(dir, "fail"), nil, 0o600)
	delete(api.entries, "/v1/imports")
	if _, _, err := runCmd(t, d, append(base, "--domain", "third.localhost", "--state", filepath.Join(dir, "third.json"))...); err == nil || !strings.Contains(err.Error(), "Access denied for user 'olduser'") {
		t.Errorf("a refused dump: %v", err)
	}
	if got, ok := api.entries["/v1/imports"]; ok {
		t.Errorf("the API read an archive from a failed pull: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "third.json")); err == nil {
		t.Error("a failed pull kept a listing")
	}
	os.Remove(filepath.Join(dir, "fail"))

	// A host key other than the pinned one: refused, nothing sent.
	api.calls = nil
	bad := slices.Clone(base)
	bad[slices.Index(bad, fp)] = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if _, _, err := runCmd(t, d, append(bad, "--domain", "other.localhost")...); err == nil || !strings.Contains(err.Error(), "host key verification failed") {
		t.Errorf("a wrong host key: %v", err)
	}
	if len(api.calls) != 0 {
		t.Errorf("calls after a refused host key: %q", api.calls)
	}
}
