package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestPortal drives the web portal in Debian's Chromium against a real
// platform (MariaDB, php-fpm, WordPress): sign in, create a site and watch
// it become Ready, open it, back it up, clone it, purge its cache, invite
// a user who then sees only their organisation, and ask the assistant to
// back up a site, confirming its proposal. Every page is kept as a
// screenshot in e2e/artifacts/portal/ (or $AIPRESS_ARTIFACTS/portal/).
func TestPortal(t *testing.T) {
	p := newPlatform(t)
	p.start()
	portal := "http://" + p.apiAddr
	shots := artifactsDir(t, "portal")
	const domain = "shop.localhost"
	const clone = "shop-copy.localhost"

	password := adminPassword(t, p, portal)

	b := newBrowser(t, portal, p.httpAddr, shots, "admin")

	// Sign in.
	b.open("/sites")
	b.waitURL("/signin", 20*time.Second)
	b.fill("E-mail", "admin@localhost")
	b.fill("Password", password)
	b.shot("01-signin")
	b.clickButton("Sign in")
	b.waitURL("/sites", 20*time.Second)
	b.waitText("Create site", 20*time.Second)
	b.shot("02-sites-empty")

	// Create a site and watch it become Ready.
	b.clickButton("Create site")
	b.waitURL("/sites/new", 10*time.Second)
	b.fill("Domain", domain)
	b.fill("Title", "Portal Shop")
	b.fill("Admin e-mail", "owner@shop.example")
	b.shot("03-create-site")
	b.click("submit Create site", `//form//button[@type='submit' and normalize-space(.)='Create site']`)
	// The admin password is shown once, then the site's page.
	b.waitText("Continue to site", 60*time.Second)
	b.shot("04-site-created")
	b.clickButton("Continue to site")
	b.waitURL("/sites/"+domain, 30*time.Second)
	b.waitTestID("site-status", "Ready", 4*time.Minute)
	b.shot("05-site-ready")

	// Open it: the site's front page through the edge, and wp-admin via
	// the one-click sign-in link (a new tab).
	b.run("open the site", 30*time.Second, navigate("http://"+domain+"/"))
	b.waitText("Portal Shop", 30*time.Second)
	b.shot("06-site-front-page")
	b.open("/sites/" + domain)
	b.waitTestID("site-status", "Ready", 30*time.Second)
	wp := b.clickToNewTab("Open wp-admin")
	wp.waitURL("/wp-admin", 30*time.Second)
	wp.waitText("Dashboard", 30*time.Second)
	wp.shot("07-wp-admin")
	wp.closeTab()

	// Back it up, with progress, and see the backup listed.
	b.open("/sites/" + domain + "/backups")
	b.clickButton("Back up now")
	b.waitCount(`[data-testid="backup-row"]`, 1, 3*time.Minute)
	b.shot("08-backups")

	// Clone it to a new domain and watch the clone become Ready.
	b.click("Clone on the backup row", `(//*[@data-testid='backup-row'])[1]`+button("Clone"))
	b.fill("New domain", clone)
	b.click("Clone in the dialog", `//*[@role='dialog']`+button("Clone"))
	b.shot("09-clone-started")
	waitSite(t, p, clone, 5*time.Minute)
	b.open("/sites/" + clone)
	b.waitTestID("site-status", "Ready", 2*time.Minute)
	b.shot("10-clone-ready")

	// Purge the cache.
	b.open("/sites/" + domain + "/cache")
	b.clickButton("Purge cache")
	b.waitText("urged", 30*time.Second) // "Purged" / "Cache purged"
	b.shot("11-cache-purged")

	// Jobs, audit log, metrics: pages render with what happened.
	b.open("/jobs")
	b.waitText("backup", 20*time.Second)
	b.shot("12-jobs")
	b.open("/audit")
	b.waitText("site.create", 20*time.Second)
	b.shot("13-audit")
	b.open("/sites/" + domain + "/metrics")
	// The front page was opened through the edge: the edge reports it
	// within seconds, and the charts draw it.
	b.waitText("Cache hits and misses", 60*time.Second)
	b.shot("14-metrics")

	// The remaining pages render with what the platform has.
	for _, pg := range []struct{ path, text string }{
		{"/tokens", "API tokens"},
		{"/plan", "Plan"},
		{"/admin/shards", "local"},
		{"/admin/orgs", "default"},
	} {
		b.open(pg.path)
		b.waitText(pg.text, 20*time.Second)
		b.shot("15-" + slug(strings.TrimPrefix(pg.path, "/")))
	}

	// Invite a user into another organisation; they see only it.
	if out, err := p.cli("org", "create", "acme"); err != nil {
		t.Fatalf("org create: %v\n%s", err, out)
	}
	b.open("/sites")
	b.chooseOrg("acme")
	b.open("/members")
	b.clickButton("Invite")
	b.fill("E-mail", "dev@acme.example")
	b.clickButton("Send invitation")
	b.waitText("dev@acme.example", 20*time.Second)
	b.shot("16-members-invited")
	secret := mailSecret(t, p, "dev@acme.example", regexp.MustCompile(`/invite#([A-Za-z0-9_\-]+)`))

	u := newBrowser(t, portal, p.httpAddr, shots, "invitee")
	u.open("/invite#" + secret)
	u.fill("Name", "Dev Eloper")
	u.fill("Password", "correct horse battery staple")
	u.shot("01-accept-invite")
	u.clickButton("Create account and join")
	u.waitURL("/sites", 30*time.Second)
	u.waitText("Create site", 20*time.Second)
	u.shot("02-sites-own-org")
	if txt := u.text(); strings.Contains(txt, domain) {
		t.Errorf("the invitee of acme sees %s of the default organisation:\n%s", domain, txt)
	}
	u.open("/sites/" + domain)
	u.waitText("not found", 20*time.Second)
	u.shot("03-other-org-site-hidden")

	// Ask the assistant to back up the site, and confirm.
	before := countBackups(t, p, domain)
	b.open("/sites")
	b.clickButton("Assistant")
	b.fill("Message the assistant", "back up "+domain)
	b.clickButton("Send")
	b.waitCount(`[data-testid="proposal-card"]`, 1, 60*time.Second)
	b.shot("17-assistant-proposal")
	b.click("Confirm", `//*[@data-testid='proposal-card']`+button("Confirm"))
	b.waitCount(`[data-testid="tool-card"]`, 1, 60*time.Second)
	b.shot("18-assistant-done")
	deadline := time.Now().Add(3 * time.Minute)
	for countBackups(t, p, domain) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("the assistant's backup of %s never appeared", domain)
		}
		time.Sleep(2 * time.Second)
	}
	if out, err := p.cli("audit", "list", "-o", "json"); err != nil || !strings.Contains(out, `"assistant"`) {
		t.Errorf("no audit record with channel assistant: %v\n%.2000s", err, out)
	}
	// White-label: the organisation's product name and colour theme the
	// portal for its users.
	b.chooseOrg("default")
	b.open("/plan")
	b.fill("Product name", "Shopfront Cloud")
	b.fill("Primary colour", "#0b7a43")
	b.clickButton("Save branding")
	b.waitTestID("product-name", "Shopfront Cloud", 20*time.Second)
	b.shot("19-white-label")
	t.Logf("screenshots: %s", shots)
}

// adminPassword gives admin@localhost a password through the real reset
// flow: request, read the mailed link from the data dir, confirm.
func adminPassword(t *testing.T, p *platform, portal string) string {
	t.Helper()
	const pw = "portal test password 1"
	post := func(path string, body any) int {
		b, _ := json.Marshal(body)
		resp, err := http.Post(portal+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if code := post("/v1/auth/password-reset", map[string]string{"email": "admin@localhost"}); code != http.StatusAccepted {
		t.Fatalf("password reset: %d", code)
	}
	token := mailSecret(t, p, "admin@localhost", regexp.MustCompile(`reset-password#([A-Za-z0-9_\-%]+)`))
	if code := post("/v1/auth/password-reset/confirm", map[string]string{"token": token, "new_password": pw}); code/100 != 2 {
		t.Fatalf("password reset confirm: %d", code)
	}
	return pw
}

// mailSecret waits for a mail to addr in the data dir's mail folder and
// returns re's first group from its body.
func mailSecret(t *testing.T, p *platform, addr string, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(p.dataDir, "mail", "*"+addr+"*.eml"))
		for i := len(files) - 1; i >= 0; i-- {
			b, err := os.ReadFile(files[i])
			if err != nil {
				continue
			}
			if m := re.FindSubmatch(b); m != nil {
				return string(m[1])
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail to %s matching %s in %s", addr, re, filepath.Join(p.dataDir, "mail"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitSite waits until the CLI reports the site Ready.
func waitSite(t *testing.T, p *platform, domain string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		out, err := p.cli("site", "get", domain, "-o", "json")
		if err == nil && strings.Contains(out, `"phase": "Ready"`) || strings.Contains(out, `"phase":"Ready"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not Ready after %s: %v\n%s", domain, d, err, out)
		}
		time.Sleep(time.Second)
	}
}

func countBackups(t *testing.T, p *platform, domain string) int {
	t.Helper()
	out, err := p.cli("backup", "list", "--site", domain, "-o", "json")
	if err != nil {
		t.Fatalf("backup list: %v\n%s", err, out)
	}
	return strings.Count(out, `"ref"`)
}
