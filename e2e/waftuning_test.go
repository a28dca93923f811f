package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"image"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

type wafEvent struct {
	RequestID  string `json:"request_id"`
	Path       string `json:"path"`
	RuleID     int    `json:"rule_id"`
	Argument   string `json:"argument"`
	Action     string `json:"action"`
	Suggestion *struct {
		Flag     string `json:"flag"`
		Command  string `json:"command"`
		Excluded bool   `json:"excluded"`
	} `json:"suggestion"`
}

// waitWAFEvent polls `aipress site waf events` until the request's event
// for rule shows (edges report in batches every few seconds).
func (p *platform) waitWAFEvent(domain, requestID string, rule int) wafEvent {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var out string
	for time.Now().Before(deadline) {
		var err error
		out, err = p.cli("site", "waf", "events", domain, "-o", "json")
		if err != nil {
			p.t.Fatal(err)
		}
		var list struct{ Items []wafEvent }
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			p.t.Fatalf("waf events output: %v\n%s", err, out)
		}
		for _, ev := range list.Items {
			if ev.RequestID == requestID && ev.RuleID == rule {
				return ev
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	p.t.Fatalf("no event of rule %d for request %s:\n%s", rule, requestID, out)
	return wafEvent{}
}

// An owner fixes a false positive without turning the WAF off: a visitor's
// search for "union select tutorial" is refused (942190); the site's WAF
// events show it with the exclusion to apply; applying that one command
// lets the search through, while the same payload in another argument or on
// another path is still refused, and the change is in the audit log. A long
// body hiding an attack behind padding is refused (413) and shows as 10008.
func testWAFTuning(t *testing.T, p *platform) {
	const domain = "tuning.localhost"
	c := p.createSite(domain, "Tuning")
	vis := p.client(domain)
	vis.waitStatus("/", 200, 30*time.Second)
	search := "/?s=" + url.QueryEscape("union select tutorial")

	code, hdr, body := vis.doRaw("GET", search, nil, nil)
	reqID := hdr.Get("X-Request-Id")
	if code != http.StatusForbidden || reqID == "" || !strings.Contains(body, reqID) {
		t.Fatalf("search before the exclusion = %d (request id %q)\n%.300s", code, reqID, body)
	}
	ev := p.waitWAFEvent(domain, reqID, 942190)
	if ev.Path != "/" || ev.Argument != "s" || ev.Action != "block" || ev.Suggestion == nil ||
		ev.Suggestion.Flag != "942190:/:s" || ev.Suggestion.Excluded {
		t.Fatalf("event = %+v, suggestion %+v", ev, ev.Suggestion)
	}
	table, err := p.cli("site", "waf", "events", domain)
	if err != nil || !strings.Contains(table, reqID) || !strings.Contains(table, "942190:/:s") {
		t.Errorf("events table: %v\n%s", err, table)
	}

	// Apply the suggested command as printed.
	args := strings.Fields(ev.Suggestion.Command)
	if len(args) < 2 || args[0] != "aipress" || ev.Suggestion.Command != "aipress site set "+domain+" --waf-exclude 942190:/:s" {
		t.Fatalf("suggested command %q", ev.Suggestion.Command)
	}
	if out, err := p.cli(args[1:]...); err != nil || !strings.Contains(out, "942190:/:s") {
		t.Fatalf("%s: %v\n%s", ev.Suggestion.Command, err, out)
	}
	vis.waitStatus(search, 200, 30*time.Second)
	for _, path := range []string{
		"/?q=" + url.QueryEscape("union select tutorial"),        // another argument
		"/page/2/?s=" + url.QueryEscape("union select tutorial"), // another path
		"/?s=" + url.QueryEscape("<script>alert(1)</script>"),    // another rule in s
	} {
		if code, _ := vis.get(path); code != http.StatusForbidden {
			t.Errorf("GET %s after the exclusion = %d, want 403", path, code)
		}
	}
	ev = p.waitWAFEvent(domain, reqID, 942190)
	if !ev.Suggestion.Excluded {
		t.Errorf("the old event does not say it is excluded now: %+v", ev.Suggestion)
	}

	// The change is audited, with what changed.
	st, err := sqlite.Open(context.Background(), filepath.Join(p.dataDir, "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := st.ListAudit(context.Background(), store.AuditListOptions{Limit: store.MaxLimit})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.Action == "site.update" && e.Target == domain && e.Outcome == "success" && e.Detail == "waf.exclusions +942190:/:s" {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit entry for the exclusion in %+v", entries)
	}

	// An attack after 200 KiB of padding is refused whole, not passed on
	// uninspected; WordPress never sees the comment.
	form := url.Values{"comment": {strings.Repeat("a", 200<<10) + "<script>alert('padded')</script>"},
		"author": {"eve"}, "email": {"eve@example.com"}, "comment_post_ID": {"1"}}
	code, hdr, body = p.client(domain).do("POST", "/wp-comments-post.php", form)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too large") {
		t.Fatalf("padded attack = %d\n%.300s", code, body)
	}
	p.waitWAFEvent(domain, hdr.Get("X-Request-Id"), 10008)
	if _, page := vis.get("/hello-world/"); strings.Contains(page, "padded") {
		t.Error("the padded comment reached WordPress")
	}

	// An upload larger than the inspection limit reaches WordPress whole,
	// with a field after the file; an attack in a field after the file is
	// refused.
	admin := p.client(domain)
	admin.get("/wp-login.php")
	code, hdr, body = admin.do("POST", "/wp-login.php", url.Values{
		"log": {c.AdminUser}, "pwd": {c.AdminPassword}, "wp-submit": {"Log In"}, "testcookie": {"1"},
	})
	if code != 302 || !hasCookie(hdr["Set-Cookie"], "wordpress_logged_in_") {
		t.Fatalf("login = %d\n%.300s", code, body)
	}
	page := admin.waitStatus("/wp-admin/media-new.php", 200, 10*time.Second)
	m := regexp.MustCompile(`"multipart_params":{[^}]*"_wpnonce":"([0-9a-f]{10})"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no upload nonce on media-new.php:\n%.500s", page)
	}
	img := image.NewNRGBA(image.Rect(0, 0, 320, 320))
	rand.Read(img.Pix) // noise: the PNG stays about 400 KB
	var pngBuf bytes.Buffer
	if err := png.Encode(&pngBuf, img); err != nil {
		t.Fatal(err)
	}
	upload := func(last string) (int, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("name", "noise.png")
		mw.WriteField("action", "upload-attachment")
		mw.WriteField("_wpnonce", m[1])
		fw, _ := mw.CreateFormFile("async-upload", "noise.png")
		fw.Write(pngBuf.Bytes())
		mw.WriteField("post_id", last)
		mw.Close()
		code, _, body := admin.doRaw("POST", "/wp-admin/async-upload.php", http.Header{"Content-Type": {mw.FormDataContentType()}}, buf.Bytes())
		return code, body
	}
	if pngBuf.Len() < 256<<10 {
		t.Fatalf("the image is only %d bytes: the test needs one over the inspection limit", pngBuf.Len())
	}
	code, body = upload("1") // WordPress checks it: post 1 exists, post 0 may not be attached to
	var res struct {
		Success bool
		Data    struct {
			URL        string
			UploadedTo int // post_id, the field after the file
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &res) != nil || !res.Success || res.Data.UploadedTo != 1 {
		t.Fatalf("upload = %d\n%.500s", code, body)
	}
	u, _ := url.Parse(res.Data.URL)
	if code, got := vis.get(u.Path); code != 200 || got != pngBuf.String() {
		t.Errorf("the uploaded file differs (%d, %d bytes of %d)", code, len(got), pngBuf.Len())
	}
	if code, body := upload("1 union select user_pass from wp_users"); code != http.StatusForbidden {
		t.Errorf("attack after the file = %d\n%.300s", code, body)
	}
}
