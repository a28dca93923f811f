package e2e

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// A known traffic script through the real edge to a real WordPress site
// lands in the site's usage records exactly: the request count to the
// request, the bytes out within 1 % of what the client read (the edge
// counts response bodies), page-cache hits and PHP time; nothing is
// counted twice in later reports; and the month's cost report prices the
// site.
func testUsage(t *testing.T, p *platform) {
	const domain = "waf.localhost" // made by testWAF
	month := time.Now().UTC().Format("2006-01")
	totals := func() (requests, bytes, hits, phpUS float64) {
		t.Helper()
		code, m := p.apiGet("/v1/usage?period=month&month=" + month + "&site=" + domain)
		if code != 200 {
			t.Fatalf("usage: %d %v", code, m)
		}
		for _, it := range m["items"].([]any) {
			r := it.(map[string]any)
			requests += r["requests"].(float64)
			bytes += r["bytes_out"].(float64)
			hits += r["cache_hits"].(float64)
			phpUS += r["php_us"].(float64)
		}
		return
	}
	// Earlier tests' traffic settles: two reports (10 s apart) change nothing.
	r0, b0, h0, p0 := totals()
	for deadline := time.Now().Add(60 * time.Second); ; {
		time.Sleep(11 * time.Second)
		r, b, h, ph := totals()
		if r == r0 && b == b0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage did not settle: %v requests, then %v", r0, r)
		}
		r0, b0, h0, p0 = r, b, h, ph
	}

	// The script: 20 home pages (the page cache answers most), 5 that
	// PHP redirects, 5 that PHP answers 404. No Accept-Encoding: the
	// client reads the bytes the edge sent.
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var sent, read int
	for _, step := range []struct {
		path string
		n    int
	}{{"/", 20}, {"/?p=1", 5}, {"/no-such-page-usage-test/", 5}} {
		for i := range step.n {
			req, _ := http.NewRequest("GET", "http://"+p.httpAddr+step.path, nil)
			req.Host = domain
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("GET %s (%d): %v", step.path, i, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			sent++
			read += len(b)
		}
	}
	var r, b, h, ph float64
	for deadline := time.Now().Add(45 * time.Second); ; { // edges report every 10 s
		if r, b, h, ph = totals(); r-r0 >= float64(sent) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage shows %v requests of the script's %d", r-r0, sent)
		}
		time.Sleep(time.Second)
	}
	// One more report: still exact (nothing counted twice).
	time.Sleep(11 * time.Second)
	r, b, h, ph = totals()
	if got := r - r0; got != float64(sent) {
		t.Errorf("requests: %v, want exactly %d", got, sent)
	}
	if got := b - b0; got < float64(read)*0.99 || got > float64(read)*1.01 {
		t.Errorf("bytes out: %v, want %d ± 1 %%", got, read)
	}
	// The page cache answers the home pages and redirects it has: at
	// least one of them, never more than the script sent.
	if got := h - h0; got < 1 || got > float64(sent) {
		t.Errorf("cache hits: %v, want 1 to %d", got, sent)
	}
	if ph-p0 <= 0 {
		t.Errorf("PHP time did not grow: %v → %v µs", p0, ph)
	}
	t.Logf("script: %d requests, %d bytes read; usage: +%v requests, +%v bytes, +%v cache hits, +%.3f s PHP", sent, read, r-r0, b-b0, h-h0, (ph-p0)/1e6)

	code, m := p.apiGet("/v1/cost?month=" + month)
	if code != 200 {
		t.Fatalf("cost: %d %v", code, m)
	}
	found := false
	for _, it := range m["sites"].([]any) {
		l := it.(map[string]any)
		if l["site"] == domain {
			found = l["share_cents"].(float64) >= 0 && l["requests"].(float64) >= r
		}
	}
	if !found {
		t.Errorf("cost report without %s: %v", domain, fmt.Sprint(m["sites"]))
	}
}
