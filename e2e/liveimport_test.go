package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/liveimport/sshtest"
	"golang.org/x/crypto/ssh"
)

// TestSiteImportLive: `aipress site import --ssh` against `aipress up`.
// The source is one of the platform's own sites, served by an SSH server
// started here (SFTP over its docroot; the server's mariadb-dump with its
// wp-config.php's credentials): the import makes a new site serving the
// post and the upload; `--final --source-api` freezes the source's
// writes through its API (its shard revokes them and reports
// WritesFrozen), re-syncs the post written since, reports the freeze and
// leaves the source frozen.
func TestSiteImportLive(t *testing.T) {
	p := newPlatform(t)
	p.start()
	const src, dest = "oldhost.localhost", "newhome.localhost"
	c := p.createSite(src, "Old Host")
	first, imagePath := publish(t, p, src, c, "Before the move", pngWith(randomBytes(t, 16<<10)))
	docroot := field(p.siteJSON(src), "status", "docroot")
	if docroot == "" {
		t.Fatal("no docroot in the site's status")
	}
	srv, err := sshtest.Start(sshtest.Config{User: "deploy", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	state := filepath.Join(t.TempDir(), "state.json")
	cfg, err := apiclient.ReadConfig(p.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"SSH_PW=pw", "SRC_TOKEN=" + cfg.Token}
	common := []string{"site", "import", "--ssh", fmt.Sprintf("deploy@127.0.0.1:%d:%s", srv.Port(), docroot),
		"--ssh-password-env", "SSH_PW", "--ssh-host-key", ssh.FingerprintSHA256(srv.HostKey), "--state", state, "--domain", dest, "-o", "json"}
	t0 := time.Now()
	out, err := p.cliEnv(env, common...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("live import: %s", time.Since(t0).Round(time.Millisecond))
	nc := p.client(dest)
	if code, body := nc.get(fmt.Sprintf("/wp-json/wp/v2/posts/%d", first)); code != 200 || !strings.Contains(body, "Before the move") {
		t.Fatalf("the imported post = %d %.300s", code, body)
	}
	if code, _ := nc.get(imagePath); code != 200 {
		t.Errorf("the imported upload %s = %d", imagePath, code)
	}

	second, _ := publish(t, p, src, c, "Written during the move", pngWith(randomBytes(t, 8<<10)))
	out, err = p.cliEnv(env, append(common, "--final", "--source-api", cfg.URL, "--source-token-env", "SRC_TOKEN", "--source-site", src)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var res struct {
		Pulled struct {
			Files int `json:"files"`
		} `json:"pulled"`
		Freeze *struct {
			Duration time.Duration `json:"duration_ns"`
		} `json:"freeze"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Freeze == nil || res.Freeze.Duration <= 0 {
		t.Fatalf("--final: %v\n%s", err, out)
	}
	t.Logf("final sync: %d files sent, source writes frozen for %s", res.Pulled.Files, res.Freeze.Duration.Round(time.Millisecond))
	if code, body := nc.get(fmt.Sprintf("/wp-json/wp/v2/posts/%d", second)); code != 200 || !strings.Contains(body, "Written during the move") {
		t.Errorf("the post written during the move = %d %.300s", code, body)
	}
	s := p.siteJSON(src)
	spec, _ := s["spec"].(map[string]any)
	if spec["write_freeze"] != true {
		t.Errorf("the source's spec: %v", spec)
	}
}
