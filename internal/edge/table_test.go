package edge

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/aipress/aipress/internal/site"
)

func TestTableLookup(t *testing.T) {
	tbl := NewTable([]Route{
		{Host: "example.com", Site: "example"},
		{Host: "Blog.Example.ORG.", Site: "blog"},
		{Host: "[::1]", Site: "v6"},
		{Host: "", Site: "ignored"},
		{Host: "dup.test", Site: "first"},
		{Host: "dup.test", Site: "second"},
	})
	tests := []struct {
		host     string
		wantSite string // "" = not found
	}{
		{"example.com", "example"},
		{"EXAMPLE.com", "example"},
		{"example.com:8080", "example"},
		{"Example.Com.:443", "example"},
		{"example.com.", "example"},
		{"blog.example.org", "blog"},
		{"BLOG.EXAMPLE.ORG:80", "blog"},
		{"[::1]:8080", "v6"},
		{"[::1]", "v6"},
		{"dup.test", "second"},
		{"", ""},
		{":80", ""},
		{"other.com", ""},
		{"example.com.evil", ""},
		{"xample.com", ""},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			r, ok := tbl.Lookup(tc.host)
			if tc.wantSite == "" {
				if ok {
					t.Fatalf("Lookup(%q) = %+v, want not found", tc.host, r)
				}
				return
			}
			if !ok {
				t.Fatalf("Lookup(%q) not found, want site %q", tc.host, tc.wantSite)
			}
			if r.Site != tc.wantSite {
				t.Fatalf("Lookup(%q).Site = %q, want %q", tc.host, r.Site, tc.wantSite)
			}
		})
	}
	if got := tbl.Len(); got != 4 {
		t.Errorf("Len = %d, want 4", got)
	}
	var nilTable *Table
	if _, ok := nilTable.Lookup("example.com"); ok {
		t.Error("nil table found a route")
	}
}

func TestNewTableCopiesInput(t *testing.T) {
	in := []Route{{Host: "a.test", Site: "a"}}
	tbl := NewTable(in)
	in[0].Site = "changed"
	r, ok := tbl.Lookup("a.test")
	if !ok || r.Site != "a" {
		t.Fatalf("table shares the caller's slice: %+v", r)
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	tbl := NewTable([]Route{{Host: "example.com"}})
	for _, h := range []string{"example.com", "example.com:8080", "example.com."} {
		if n := testing.AllocsPerRun(100, func() { tbl.Lookup(h) }); n != 0 {
			t.Errorf("Lookup(%q) allocates %v times, want 0", h, n)
		}
	}
}

func TestRouteForSite(t *testing.T) {
	base := func(mut func(*site.Site)) *site.Site {
		s := &site.Site{
			Metadata: site.Metadata{Name: "blog.example.com"},
			Spec:     site.Spec{Domain: "blog.example.com"},
			Status:   site.Status{Phase: site.PhaseReady, Endpoint: "unix:/run/x.sock", Docroot: "/srv/x"},
		}
		mut(s)
		return s
	}
	local := Location{Docroot: "/srv/x/htdocs", Endpoint: "unix:/srv/x.sock"}
	remote := Location{Docroot: "/srv/x/htdocs", Gateway: "s1.internal:8443", Shard: "s1"}
	tests := []struct {
		name string
		s    *site.Site
		loc  Location
		want RouteState
	}{
		{"ready", base(func(*site.Site) {}), local, Serving},
		{"ready behind a gateway", base(func(*site.Site) {}), remote, Serving},
		{"suspended spec", base(func(s *site.Site) { s.Spec.Suspended = true }), local, Suspended},
		{"suspended phase", base(func(s *site.Site) { s.Status.Phase = site.PhaseSuspended }), local, Suspended},
		{"creating", base(func(s *site.Site) { s.Status.Phase = site.PhaseCreating }), local, Unavailable},
		{"failed", base(func(s *site.Site) { s.Status.Phase = site.PhaseFailed }), local, Unavailable},
		{"ready, nowhere to reach it", base(func(*site.Site) {}), Location{}, Unavailable},
		{"ready, gateway without a shard", base(func(*site.Site) {}), Location{Docroot: "/x", Gateway: "h:1"}, Unavailable},
		{"moving", base(func(s *site.Site) { s.Move = &site.Move{Phase: site.MoveImporting} }), local, Serving},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := RouteForSite(tc.s, tc.loc)
			if r.State != tc.want {
				t.Fatalf("state = %v, want %v", r.State, tc.want)
			}
			if r.Options.WritesFrozen != tc.s.Move.Frozen() {
				t.Errorf("WritesFrozen = %v with move %+v", r.Options.WritesFrozen, tc.s.Move)
			}
			if r.Host != "blog.example.com" || r.Site != "blog.example.com" {
				t.Fatalf("route = %+v", r)
			}
		})
	}
}

func makeRoutes(n int) []Route {
	routes := make([]Route, n)
	for i := range routes {
		routes[i] = Route{
			Host:     fmt.Sprintf("site-%06d.example.com", i),
			Site:     fmt.Sprintf("site-%06d", i),
			Docroot:  fmt.Sprintf("/srv/aipress/sites/site-%06d/docroot", i),
			Endpoint: fmt.Sprintf("unix:/run/aipress/php/site-%06d.sock", i),
			State:    Serving,
		}
	}
	return routes
}

// BenchmarkLookup looks up hosts (with a port, as browsers on non-default
// ports send them) in a 50,000-route table.
func BenchmarkLookup(b *testing.B) {
	const n = 50000
	tbl := NewTable(makeRoutes(n))
	hosts := make([]string, 1024)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("site-%06d.example.com:8080", (i*7919)%n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := tbl.Lookup(hosts[i&1023]); !ok {
			b.Fatal("not found")
		}
	}
}

// BenchmarkTableMemory reports the heap cost of a 50,000-route table:
// table-bytes/route is what NewTable adds on top of the caller's routes (its
// copy of the Route structs plus the host index; the strings are shared),
// total-bytes/route also counts the caller's routes and their strings.
func BenchmarkTableMemory(b *testing.B) {
	const n = 50000
	var tableBytes, totalBytes float64
	for b.Loop() {
		var m0, m1, m2 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		routes := makeRoutes(n)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		tbl := NewTable(routes)
		runtime.GC()
		runtime.ReadMemStats(&m2)
		runtime.KeepAlive(tbl)
		runtime.KeepAlive(routes)
		tableBytes = float64(int64(m2.HeapAlloc)-int64(m1.HeapAlloc)) / n
		totalBytes = float64(int64(m2.HeapAlloc)-int64(m0.HeapAlloc)) / n
	}
	b.ReportMetric(tableBytes, "table-bytes/route")
	b.ReportMetric(totalBytes, "total-bytes/route")
}

// TestTableReady: TableReady is closed by the first SetTable, even of an
// empty table, and only then.
func TestTableReady(t *testing.T) {
	s := New(Config{})
	select {
	case <-s.TableReady():
		t.Fatal("TableReady closed before any SetTable")
	default:
	}
	s.SetTable(nil)
	s.SetTable(nil) // twice: no panic
	select {
	case <-s.TableReady():
	default:
		t.Fatal("TableReady open after SetTable")
	}
}
