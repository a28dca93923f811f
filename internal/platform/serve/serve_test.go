package serve

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// freeAddr returns a loopback address nobody listens on (now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// canBind reports whether addr can be listened on again.
func canBind(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// A group's listeners are all closed by Close (those not served) and by
// Shutdown (served or not); a second Listen on a bound address fails with
// the listener's name.
func TestGroupClosesEveryListener(t *testing.T) {
	a, b := freeAddr(t), freeAddr(t)
	g := NewGroup(nil)
	if _, err := g.Listen("edge", a); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Listen("edge https", b); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Listen("again", a); err == nil || !strings.HasPrefix(err.Error(), "again listen:") {
		t.Fatalf("a second listener on %s: %v", a, err)
	}
	if canBind(a) || canBind(b) {
		t.Fatal("the group's ports could be bound by another")
	}
	g.Close()
	if !canBind(a) || !canBind(b) {
		t.Fatal("Close left a port bound")
	}

	g = NewGroup(nil)
	served, err := g.Listen("served", a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Listen("idle", b); err != nil {
		t.Fatal(err)
	}
	g.Serve("served", &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	})}, served)
	g.Close() // the served listener stays
	if !canBind(b) {
		t.Fatal("Close left the idle port bound")
	}
	resp, err := http.Get("http://" + a + "/")
	if err != nil {
		t.Fatalf("the served listener stopped with Close: %v", err)
	}
	resp.Body.Close()
	g.Shutdown(context.Background())
	if !canBind(a) {
		t.Fatal("Shutdown left the served port bound")
	}
}

func TestClientAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:80": "127.0.0.1:80", "[::]:8080": "127.0.0.1:8080", "127.0.0.2:7070": "127.0.0.2:7070", "[::1]:9": "[::1]:9",
	} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := ClientAddr(a); got != want {
			t.Errorf("ClientAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

// The sites' URLs name the edges' ports unless they are the scheme's, and
// there is no HTTPS URL without an HTTPS listener.
func TestSiteURLs(t *testing.T) {
	tests := []struct {
		port        int
		http, https string // https "": no function
	}{
		{0, "http://blog.localhost", ""},
		{-1, "http://blog.localhost", ""},
		{80, "http://blog.localhost", "https://blog.localhost:80"},
		{443, "http://blog.localhost:443", "https://blog.localhost"},
		{8443, "http://blog.localhost:8443", "https://blog.localhost:8443"},
	}
	for _, tt := range tests {
		if got := HTTPURL(tt.port)("blog.localhost"); got != tt.http {
			t.Errorf("HTTPURL(%d) = %q, want %q", tt.port, got, tt.http)
		}
		f := HTTPSURL(tt.port)
		switch {
		case tt.https == "" && f != nil:
			t.Errorf("port %d: an HTTPS URL %q, want none", tt.port, f("blog.localhost"))
		case tt.https != "" && f == nil:
			t.Errorf("port %d: no HTTPS URL, want %q", tt.port, tt.https)
		case f != nil && f("blog.localhost") != tt.https:
			t.Errorf("port %d: %q, want %q", tt.port, f("blog.localhost"), tt.https)
		}
	}
}

// The loopback ports come from listeners' addresses and purge URLs.
func TestPortOf(t *testing.T) {
	for in, want := range map[string]int{
		"127.0.0.1:8080": 8080, "[::]:8443": 8443, "localhost:80": 80, ":9": 9,
		"http://127.0.0.1:18080/.aipress/purge": 18080, "http://edge/.aipress/purge": 80, "https://edge/": 443,
		"": 0, "nonsense": 0,
	} {
		if got := PortOf(in); got != want {
			t.Errorf("PortOf(%q) = %d, want %d", in, got, want)
		}
	}
}

// A server started after Shutdown (an edge that waited for its shards
// while the process stopped) serves nothing: its listener is closed.
func TestServeAfterShutdown(t *testing.T) {
	g := NewGroup(nil)
	ln, err := g.Listen("late", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.Shutdown(context.Background())
	g.Serve("late", &http.Server{Handler: http.NotFoundHandler()}, ln)
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the listener of a server started after Shutdown still accepts")
	}
	g.Shutdown(context.Background()) // and again: nothing left to wait for
}
