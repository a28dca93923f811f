package waf

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/site"
)

const xss = "<script>alert(document.cookie)</script>"

// padding returns n bytes of harmless text.
func padding(n int) string { return strings.Repeat("a", n) }

// rawRequest is a POST of body with a content type; length -1 sends it
// with an unknown length (chunked).
func rawRequest(target, ctype string, body []byte, length int64) *http.Request {
	req := browserRequest("POST", target, io.NopCloser(bytes.NewReader(body)))
	req.Header.Set("Content-Type", ctype)
	req.ContentLength = length
	if length < 0 {
		req.TransferEncoding = []string{"chunked"}
	}
	return req
}

func formBody(kv ...string) []byte {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return []byte(v.Encode())
}

// sized returns a form body of exactly n bytes: a=<padding>.
func sized(n int) []byte { return []byte("a=" + padding(n-2)) }

// Bodies longer than the inspection limit that are not uploads are
// refused, so an attack cannot hide behind 128 KiB of padding; an upload's
// fields are inspected wherever they are, and only its files may be large.
func TestBodyLimits(t *testing.T) {
	const limit = DefaultBodyLimit
	big := padding(200 << 10)
	file := string(randomBytes(1 << 20))
	mp := func(parts ...part) (body []byte, ctype string) { return multipartBody(t, parts) }
	type tc struct {
		name   string
		req    func() *http.Request
		status int
		rule   int // a rule among the matches (0: none expected)
	}
	form := func(b []byte, chunked bool) func() *http.Request {
		return func() *http.Request {
			n := int64(len(b))
			if chunked {
				n = -1
			}
			return rawRequest("/wp-comments-post.php", "application/x-www-form-urlencoded", b, n)
		}
	}
	multi := func(length func(int) int64, parts ...part) func() *http.Request {
		return func() *http.Request {
			b, ct := mp(parts...)
			return rawRequest("/wp-admin/async-upload.php", ct, b, length(len(b)))
		}
	}
	known := func(n int) int64 { return int64(n) }
	unknown := func(int) int64 { return -1 }
	jsonBig, _ := json.Marshal(map[string]string{"pad": big, "comment": xss})
	tests := []tc{
		{"form: attack after padding", form(formBody("pad", big, "comment", xss), false), 413, 10008},
		{"form: attack after padding, chunked", form(formBody("pad", big, "comment", xss), true), 413, 10008},
		{"form: long and harmless", form(formBody("comment", big), false), 413, 10008},
		{"form: exactly the limit", form(sized(limit), false), 200, 0},
		{"form: one byte more", form(sized(limit+1), false), 413, 10008},
		{"form: one byte more, chunked", form(sized(limit+1), true), 413, 10008},
		{"form: attack within the limit", form(formBody("comment", xss), false), 403, 941100},
		{"json: attack after padding", func() *http.Request {
			return rawRequest("/wp-json/wp/v2/comments", "application/json", jsonBig, int64(len(jsonBig)))
		}, 413, 10008},
		{"xml: long", func() *http.Request {
			b := []byte("<a>" + big + "</a>")
			return rawRequest("/xmlrpc.php", "text/xml", b, int64(len(b)))
		}, 413, 10008},
		{"no content type: long", func() *http.Request {
			b := []byte(big)
			req := rawRequest("/index.php", "", b, int64(len(b)))
			req.Header.Del("Content-Type")
			return req
		}, 413, 10008},
		{"multipart: attack in a field after a 1 MiB file", multi(known,
			part{name: "name", value: "x.jpg"}, part{name: "async-upload", file: "x.jpg", value: file},
			part{name: "comment", value: xss}), 403, 941100},
		{"multipart: attack after a 1 MiB file, chunked", multi(unknown,
			part{name: "async-upload", file: "x.jpg", value: file}, part{name: "comment", value: xss}), 403, 941100},
		{"multipart: harmless fields around a 1 MiB file", multi(known,
			part{name: "_wpnonce", value: "0123456789"}, part{name: "pluginzip", file: "plugin.zip", value: file},
			part{name: "install-plugin-submit", value: "Install Now"}), 200, 0},
		{"multipart: fields longer than the limit", multi(known,
			part{name: "a", value: padding(limit / 2)}, part{name: "f", file: "x.jpg", value: file},
			part{name: "b", value: padding(limit/2 + 1)}), 413, RuleMultipartFields},
		{"multipart: fields of exactly the limit", multi(known,
			part{name: "a", value: padding(limit / 2)}, part{name: "f", file: "x.jpg", value: file},
			part{name: "b", value: padding(limit / 2)}), 200, 0},
	}
	h := newHarness(t, site.WAFBlock, 1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := h.do(tt.req())
			if rec.Code != tt.status {
				t.Fatalf("status = %d (rules %v), want %d\n%.300s", rec.Code, h.info.WAFRules, tt.status, rec.Body.String())
			}
			if (tt.status == 200) != h.up.called {
				t.Errorf("upstream called = %v", h.up.called)
			}
			if tt.rule != 0 && !slices.Contains(h.info.WAFRules, tt.rule) {
				t.Errorf("rules %v lack %d", h.info.WAFRules, tt.rule)
			}
			if tt.status == 413 && !strings.Contains(rec.Body.String(), TooLargeMessage) {
				t.Errorf("413 page lacks the message:\n%.300s", rec.Body.String())
			}
		})
	}
}

// In detect mode a long body passes, whole; so does it where the site
// excluded 10008 — but what the WAF did read is still inspected there.
func TestBodyLimitDetectAndExclusion(t *testing.T) {
	ex := []site.WAFExclusion{{RuleID: 10008, Path: "/wp-json/wp/v2/posts/*"}}
	h := newHarnessFor(t, firewall(t),
		edge.Route{Host: "detect.test", Site: "detect.test", State: edge.Serving, Docroot: "/nonexistent",
			Endpoint: "unix:/nonexistent.sock", Options: edge.RouteOptions{WAFMode: site.WAFDetect, WAFParanoia: 1}},
		edge.Route{Host: "example.test", Site: "example.test", State: edge.Serving, Docroot: "/nonexistent",
			Endpoint: "unix:/nonexistent.sock", Options: edge.RouteOptions{WAFMode: site.WAFBlock, WAFParanoia: 1, WAFExclusions: &ex}},
	)
	long, _ := json.Marshal(map[string]string{"title": "Long read", "content": padding(300 << 10)})
	post := func(host, path string, body []byte) *httptestResult {
		req := rawRequest(path, "application/json", body, int64(len(body)))
		req.Host = host
		rec := h.do(req)
		return &httptestResult{code: rec.Code, called: h.up.called, sum: h.up.sum, rules: h.info.WAFRules}
	}
	sum := sha256.Sum256(long)
	if r := post("detect.test", "/wp-json/wp/v2/posts/7", long); r.code != 200 || !r.called || r.sum != sum || !slices.Contains(r.rules, 10008) {
		t.Errorf("detect mode: %+v", r)
	}
	if r := post("example.test", "/wp-json/wp/v2/posts/7", long); r.code != 200 || !r.called || r.sum != sum {
		t.Errorf("10008 excluded: %+v", r)
	}
	if r := post("example.test", "/wp-json/wp/v2/comments", long); r.code != 413 || r.called {
		t.Errorf("another path: %+v", r)
	}
	attack, _ := json.Marshal(map[string]string{"content": xss, "pad": padding(300 << 10)})
	if r := post("example.test", "/wp-json/wp/v2/posts/7", attack); r.code != 403 || r.called {
		t.Errorf("attack in the inspected part, 10008 excluded: %+v", r)
	}
}

type httptestResult struct {
	code   int
	called bool
	sum    [32]byte
	rules  []int
}

// A multipart body longer than MaxBodyBytes is refused, whether its length
// is announced or not.
func TestMultipartMaxBody(t *testing.T) {
	fw, err := New(Config{MaxBodyBytes: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessFor(t, fw, edge.Route{Host: "example.test", Site: "example.test", State: edge.Serving,
		Docroot: "/nonexistent", Endpoint: "unix:/nonexistent.sock", Options: edge.RouteOptions{WAFMode: site.WAFBlock, WAFParanoia: 1}})
	for _, size := range []int{400 << 10, 600 << 10} {
		for _, length := range []string{"known", "chunked"} {
			body, ct := multipartBody(t, []part{{name: "f", file: "x.bin", value: string(randomBytes(size))}})
			n := int64(len(body))
			if length == "chunked" {
				n = -1
			}
			rec := h.do(rawRequest("/wp-admin/async-upload.php", ct, body, n))
			want := 200
			if size > 512<<10 {
				want = 413
			}
			if rec.Code != want || h.up.called != (want == 200) {
				t.Errorf("%d bytes, %s length: status %d (upstream %v), want %d", len(body), length, rec.Code, h.up.called, want)
			}
		}
	}
}

// The temporary files of inspected uploads (Coraza's body buffer beyond
// the body limit, its copies of the files) are removed with the request.
func TestUploadTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	fw, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessFor(t, fw, edge.Route{Host: "example.test", Site: "example.test", State: edge.Serving,
		Docroot: "/nonexistent", Endpoint: "unix:/nonexistent.sock", Options: edge.RouteOptions{WAFMode: site.WAFBlock, WAFParanoia: 1}})
	var during []string
	h.up.hook = func() { during = dirEntries(t, dir) }
	body, ct := multipartBody(t, []part{{name: "f", file: "x.bin", value: string(randomBytes(1 << 20))}, {name: "c", value: "hello"}})
	if rec := h.do(rawRequest("/wp-admin/async-upload.php", ct, body, int64(len(body)))); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	if len(during) == 0 {
		t.Error("no temporary file while the upstream read the body: TMPDIR not used, the test proves nothing")
	}
	if left := dirEntries(t, dir); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
