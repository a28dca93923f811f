package waf

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/site"
)

// The catalog knows every rule of the rule set, and which ones a site may
// exclude.
func TestCatalog(t *testing.T) {
	tests := []struct {
		id         int
		known      bool
		excludable bool
		msg        string
		paranoia   int
	}{
		{942190, true, true, "Detects MSSQL code execution and information gathering attempts", 1},
		{941100, true, true, "XSS Attack Detected via libinjection", 1},
		{932236, true, true, "", 2},
		{943120, true, true, "Possible Session Fixation Attack: SessionID Parameter Name with No Referer", 1},
		{10211, true, true, "Possible Session Fixation Attack: SessionID Parameter Name with No Referer (JSON body)", 1},
		{10008, true, true, "Request body larger than the WAF inspects (not a file upload)", 0},
		{10005, true, true, "Too many arguments (body)", 0},
		{RuleMultipartFields, true, true, "Multipart fields", 0},
		{949110, true, false, "Inbound Anomaly Score Exceeded", 0},
		{901001, true, false, "", 0},   // CRS initialization
		{10110, true, false, "", 0},    // our WordPress exclusion
		{10011, true, false, "", 0},    // our body-limit setting
		{123456, false, false, "", 0},  // not a rule
		{9999999, false, false, "", 0}, // out of range
	}
	for _, tt := range tests {
		r, ok := LookupRule(tt.id)
		if ok != tt.known || r.Excludable != tt.excludable || !strings.HasPrefix(r.Msg, tt.msg) || (tt.paranoia != 0 && r.Paranoia != tt.paranoia) {
			t.Errorf("LookupRule(%d) = %+v, %v", tt.id, r, ok)
		}
		if err := CheckExcludable(tt.id); (err == nil) != tt.excludable {
			t.Errorf("CheckExcludable(%d) = %v", tt.id, err)
		}
	}
	c, err := rules()
	if err != nil {
		t.Fatal(err)
	}
	ids := sortedIDs(c)
	if len(ids) < 400 {
		t.Errorf("only %d rules in the catalog", len(ids))
	}
	// Every rule that matched in this package's tests is known.
	for _, id := range []int{920350, 941110, 941160, 932160, 930120, 944150, 10006, 10007} {
		if _, ok := c[id]; !ok {
			t.Errorf("rule %d missing", id)
		}
	}
}

// Applying a site's exclusions costs the same whatever number of sites
// share the edge: they are looked up with the route, and applied to the
// transaction of the request alone. Compare sites=1 with sites=50000 (each
// site with its exclusions), and 0, 5 or 50 exclusions for the site
// requested (all of them for its path, so all are applied).
func BenchmarkExclusions(b *testing.B) {
	fw := firewall(b)
	if err := fw.Prepare(1); err != nil {
		b.Fatal(err)
	}
	kinds := []string{"942190:/:s", "941100:/:content", "932236:/*", "920350:/", "942100:/*:q"}
	for _, tc := range []struct{ sites, exclusions int }{{1, 0}, {50000, 0}, {1, 5}, {50000, 5}, {50000, 50}} {
		b.Run("sites="+strconv.Itoa(tc.sites)+"/exclusions="+strconv.Itoa(tc.exclusions), func(b *testing.B) {
			var ex []string
			for i := range tc.exclusions {
				ex = append(ex, kinds[i%len(kinds)])
			}
			routes := make([]edge.Route, 0, tc.sites)
			for i := range tc.sites {
				routes = append(routes, routeWith("s"+strconv.Itoa(i)+".test", site.WAFBlock, ex...))
			}
			h := newHarnessFor(b, fw, routes...)
			b.ReportAllocs()
			for b.Loop() {
				req := browserRequest("GET", "/?s=hello+world&q=tutorials", nil)
				req.Host = "s0.test"
				if rec := h.do(req); rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}
