package edge

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchSites is a docroot with a small and a large file, served by a local
// edge and by an edge whose route points to a shard's gateway on loopback
// (mutual TLS).
func benchSites(b *testing.B) (local, remote *Server) {
	b.Helper()
	dir := b.TempDir()
	for name, size := range map[string]int{"style.css": 20 << 10, "big.bin": 1 << 20, "index.php": 10} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Repeat("x", size)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	route := Route{Host: "site.test", Site: "site", Docroot: dir, Endpoint: "unix:" + filepath.Join(dir, "none.sock"), State: Serving}
	local = New(Config{})
	local.SetTable(NewTable([]Route{route}))
	static := New(Config{StaticServer: true})
	static.SetTable(NewTable([]Route{route}))
	m := newTestMesh(b)
	route.Gateway, route.Shard, route.Endpoint = m.startGateway(b, static), testShardName, ""
	remote = New(Config{Mesh: m.edge})
	remote.SetTable(NewTable([]Route{route}))
	return local, remote
}

func benchGet(b *testing.B, h http.Handler, target string, want int) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "http://site.test"+target, nil))
		if rec.Code != want {
			b.Fatalf("%s: %d", target, rec.Code)
		}
	}
}

// go test -run X -bench Static ./internal/edge/ compares a static file from
// the local disk with one from a shard's static server over loopback.
func BenchmarkStaticLocalSmall(b *testing.B) {
	local, _ := benchSites(b)
	benchGet(b, local, "/style.css", 200)
}

func BenchmarkStaticRemoteSmallCached(b *testing.B) {
	_, remote := benchSites(b)
	benchGet(b, remote, "/style.css", 200)
}

func BenchmarkStaticRemoteSmallRevalidated(b *testing.B) {
	old := remoteFresh
	remoteFresh = 0 // every request asks the shard (304)
	b.Cleanup(func() { remoteFresh = old })
	_, remote := benchSites(b)
	benchGet(b, remote, "/style.css", 200)
}

func BenchmarkStaticLocalLarge(b *testing.B) {
	local, _ := benchSites(b)
	benchGet(b, local, "/big.bin", 200)
}

func BenchmarkStaticRemoteLarge(b *testing.B) {
	_, remote := benchSites(b)
	benchGet(b, remote, "/big.bin", 200)
}

// The try_files decision for a PHP request (the pool is absent, so PHP
// answers 502 at once): local stat vs one round trip to the shard.
func BenchmarkDecisionLocal(b *testing.B) {
	local, _ := benchSites(b)
	benchGet(b, local, "/some-permalink/", 502)
}

func BenchmarkDecisionRemote(b *testing.B) {
	_, remote := benchSites(b)
	benchGet(b, remote, "/some-permalink/", 502)
}
