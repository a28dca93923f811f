package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Kill -9 the whole platform in the middle of site creations, start it again
// on the same data dir: every site ends up serving, nothing is orphaned, and
// the sites that existed before keep serving.
func TestCrashRecovery(t *testing.T) {
	p := newPlatform(t)
	p.start()
	p.createSite("before.localhost", "Before The Crash")

	stages := []struct {
		domain string
		// until reports whether the creation has reached the point to crash at.
		until func(status map[string]any) bool
	}{
		{"accepted.localhost", func(map[string]any) bool { return true }}, // right after the API accepted it
		{"installing.localhost", func(s map[string]any) bool { return conditionReason(s, "Installed") == "Installing" }},
		{"files.localhost", func(s map[string]any) bool { return conditionReason(s, "FilesReady") == "Ready" }},
	}
	for _, st := range stages {
		if _, err := p.cli("site", "create", st.domain, "--title", "Crash "+st.domain, "--admin-email", "a@example.com", "--wait=false"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		last := p.apiSite(st.domain)
		for !st.until(last) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never reached its crash point: %v", st.domain, last["status"])
			}
			time.Sleep(5 * time.Millisecond)
			last = p.apiSite(st.domain)
		}
		// A live php-fpm worker outlives its killed master unless the
		// restarted platform cleans it up; make sure one exists.
		if code, _ := p.client("before.localhost").get("/"); code != 200 {
			t.Fatalf("before.localhost = %d before the crash", code)
		}
		p.kill9()
		t.Logf("killed the platform while %s was %q (%s)", st.domain, field(last, "status", "phase"), conditionReason(last, "Installed"))
		p.start()
	}

	for _, domain := range []string{"before.localhost", "accepted.localhost", "installing.localhost", "files.localhost"} {
		body := p.client(domain).waitStatus("/", 200, 2*time.Minute)
		if !strings.Contains(body, "<title>") {
			t.Errorf("%s: no page after recovery", domain)
		}
	}
	if _, body := p.client("before.localhost").get("/"); !strings.Contains(body, "Before The Crash") {
		t.Error("the site created before the crashes lost its title")
	}
	inv := p.inventory()
	for kind, names := range inv {
		if len(names) != 4 {
			t.Errorf("%s after recovery: %v, want one per site (4)", kind, names)
		}
	}
	for _, kind := range []string{"databases", "dbusers", "pools", "dirs"} {
		if _, ok := inv[kind]; !ok {
			t.Errorf("inventory has no %s", kind)
		}
	}
	// No half-built docroots are left behind.
	left, _ := filepath.Glob(filepath.Join(p.dataDir, "shards", "local", "sites", "*", "*.building"))
	if len(left) > 0 {
		t.Errorf("half-built docroots left: %v", left)
	}
}

func conditionReason(s map[string]any, typ string) string {
	st, _ := s["status"].(map[string]any)
	conds, _ := st["conditions"].([]any)
	i := slices.IndexFunc(conds, func(c any) bool { m, _ := c.(map[string]any); return m["type"] == typ })
	if i < 0 {
		return ""
	}
	r, _ := conds[i].(map[string]any)["reason"].(string)
	return r
}

// apiSite reads a site straight from the API (faster than the CLI, for
// polling a crash point).
func (p *platform) apiSite(domain string) map[string]any {
	p.t.Helper()
	var cfg struct{ URL, Token string }
	b, err := os.ReadFile(filepath.Join(p.dataDir, "client.json"))
	if err != nil {
		p.t.Fatal(err)
	}
	json.Unmarshal(b, &cfg)
	req, _ := http.NewRequest("GET", cfg.URL+"/v1/sites/"+domain, nil)
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return m
}
