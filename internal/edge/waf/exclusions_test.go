package waf

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/site"
)

const unionSelect = "union select tutorial"

func routeWith(host, mode string, ex ...string) edge.Route {
	r := edge.Route{Host: host, Site: host, State: edge.Serving, Docroot: "/nonexistent", Endpoint: "unix:/nonexistent.sock",
		Options: edge.RouteOptions{WAFMode: mode, WAFParanoia: 1}}
	if len(ex) > 0 {
		list := make([]site.WAFExclusion, 0, len(ex))
		for _, s := range ex {
			e, err := site.ParseWAFExclusion(s)
			if err != nil {
				panic(err)
			}
			list = append(list, e)
		}
		r.Options.WAFExclusions = &list
	}
	return r
}

func jsonRequest(target string, v any) *http.Request {
	b, _ := json.Marshal(v)
	return rawRequest(target, "application/json", b, int64(len(b)))
}

// A visitor's search for "union select tutorial" is refused by 942190; the
// owner fixes it with one exclusion (942190 × / × s), and the same payload
// in another argument, on another path or past the exclusion's scope is
// still refused.
func TestExclusions(t *testing.T) {
	get := func(target string) func() *http.Request {
		return func() *http.Request { return browserRequest("GET", target, nil) }
	}
	q := url.QueryEscape(unionSelect)
	tests := []struct {
		name string
		ex   []string
		req  func() *http.Request
		want int
	}{
		{"no exclusion: the search is refused", nil, get("/?s=" + q), 403},
		{"942190:/:s lets the search through", []string{"942190:/:s"}, get("/?s=" + q), 200},
		{"942190:/:s, S (arguments are case-insensitive)", []string{"942190:/:s"}, get("/?S=" + q), 200},
		{"942190:/:s, another argument", []string{"942190:/:s"}, get("/?q=" + q), 403},
		{"942190:/:s, both arguments", []string{"942190:/:s"}, get("/?s=" + q + "&q=" + q), 403},
		{"942190:/:s, another path (exact match)", []string{"942190:/:s"}, get("/page/2/?s=" + q), 403},
		{"942190:/:s, another rule in s", []string{"942190:/:s"}, get("/?s=" + url.QueryEscape(xss)), 403},
		{"942190:/*:s covers every path", []string{"942190:/*:s"}, get("/page/2/?s=" + q), 200},
		{"942190:/*:s, unclean path", []string{"942190:/*:s"}, get("/a/../?s=" + q), 403},
		{"942190:/ (whole rule) covers every argument", []string{"942190:/"}, get("/?s=" + q + "&q=" + q), 200},
		{"another rule's exclusion does not help", []string{"942100:/:s"}, get("/?s=" + q), 403},
		{"942190:/:s in a form body", []string{"942190:/:s"}, func() *http.Request {
			return formRequest("/", url.Values{"s": {unionSelect}})
		}, 200},
		{"942190:/api:s in a JSON body", []string{"942190:/api:s"}, func() *http.Request {
			return jsonRequest("/api", map[string]string{"s": unionSelect})
		}, 200},
		{"942190:/api:s, another JSON key", []string{"942190:/api:s"}, func() *http.Request {
			return jsonRequest("/api", map[string]string{"t": unionSelect})
		}, 403},
		{"942190:/api:s, nested key is another argument", []string{"942190:/api:s"}, func() *http.Request {
			return jsonRequest("/api", map[string]any{"x": map[string]string{"s": unionSelect}})
		}, 403},
		{"942190:/api:x.s, nested key", []string{"942190:/api:x.s"}, func() *http.Request {
			return jsonRequest("/api", map[string]any{"x": map[string]string{"s": unionSelect}})
		}, 200},
		{"943120:/api lifts its JSON twin 10211", []string{"943120:/api"}, func() *http.Request {
			return jsonRequest("/api", map[string]string{"PHPSESSID": "abc"})
		}, 200},
		{"no exclusion: JSON session id refused", nil, func() *http.Request {
			return jsonRequest("/api", map[string]string{"PHPSESSID": "abc"})
		}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarnessFor(t, firewall(t), routeWith("example.test", site.WAFBlock, tt.ex...))
			rec := h.do(tt.req())
			if rec.Code != tt.want || h.up.called != (tt.want == 200) {
				t.Fatalf("status = %d (rules %v, upstream %v), want %d", rec.Code, h.info.WAFRules, h.up.called, tt.want)
			}
		})
	}
}

// The motivating false positive is 942190 alone: the exclusion lifts the
// only rule that matched.
func TestUnionSelectIs942190(t *testing.T) {
	h := newHarness(t, site.WAFBlock, 1)
	rec := h.do(browserRequest("GET", "/?s="+url.QueryEscape(unionSelect), nil))
	rules := slices.DeleteFunc(slices.Clone(h.info.WAFRules), func(id int) bool { return id >= 949000 && id < 950000 })
	if rec.Code != 403 || !slices.Equal(rules, []int{942190}) {
		t.Fatalf("status %d, rules %v; want 403 by 942190 alone", rec.Code, h.info.WAFRules)
	}
}

// One site's exclusions never apply to another site's requests, however
// the two interleave: they are per transaction, on one shared rule set.
func TestExclusionsStayPerSite(t *testing.T) {
	fw := firewall(t)
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			// Each worker has its own edge (the harness records one
			// request at a time) over the same Firewall.
			h := newHarnessFor(t, fw, routeWith("a.test", site.WAFBlock, "942190:/:s"), routeWith("b.test", site.WAFBlock))
			for i := range 25 {
				host := "a.test"
				want := 200
				if (w+i)%2 == 1 {
					host, want = "b.test", 403
				}
				req := browserRequest("GET", "/?s="+url.QueryEscape(unionSelect), nil)
				req.Host = host
				if rec := h.do(req); rec.Code != want {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("%s: %d, want %d", host, rec.Code, want))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Errorf("%d wrong answers, e.g. %v", len(errs), errs[:min(5, len(errs))])
	}
}

// The same attack in a form body and in a JSON body is treated the same:
// CRS rules anchored on argument names (943110, 943120) have JSON twins.
func TestJSONArgumentNames(t *testing.T) {
	h := newHarness(t, site.WAFBlock, 1)
	for _, tc := range []struct {
		name    string
		referer string
		form    int // the CRS rule on the form body
		twin    int // its twin on the JSON body
	}{
		{"no referer", "", 943120, 10211},
		{"off-domain referer", "https://evil.example/page", 943110, 10210},
	} {
		for _, body := range []string{"form", "json"} {
			t.Run(tc.name+"/"+body, func(t *testing.T) {
				var req *http.Request
				if body == "form" {
					req = formRequest("/wp-login.php", url.Values{"PHPSESSID": {"attacker-chosen"}, "log": {"ann"}})
				} else {
					req = jsonRequest("/wp-json/x/v1/login", map[string]string{"PHPSESSID": "attacker-chosen", "log": "ann"})
				}
				if tc.referer != "" {
					req.Header.Set("Referer", tc.referer)
				}
				rec := h.do(req)
				want := tc.form
				if body == "json" {
					want = tc.twin
				}
				if rec.Code != 403 || !slices.Contains(h.info.WAFRules, want) {
					t.Fatalf("status %d, rules %v; want 403 with %d", rec.Code, h.info.WAFRules, want)
				}
			})
		}
	}
	// A JSON key that merely contains a session-id name is not one.
	rec := h.do(jsonRequest("/wp-json/x/v1/login", map[string]string{"my_phpsessid_note": "x"}))
	if rec.Code != 200 {
		t.Errorf("benign JSON: status %d, rules %v", rec.Code, h.info.WAFRules)
	}
}
