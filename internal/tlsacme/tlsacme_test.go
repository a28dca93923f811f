package tlsacme

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// closedURL is an ACME directory on a loopback port nothing listens on, so
// any attempt to obtain a certificate fails fast without leaving the machine.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "https://" + addr + "/dir"
}

func TestDecision(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	m, err := New(Config{Dir: t.TempDir(), CA: closedURL(t), Allow: func(_ context.Context, name string) error {
		mu.Lock()
		asked = append(asked, name)
		mu.Unlock()
		if name == "blog.example.com" {
			return nil
		}
		return errors.New("not a site")
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()

	// A name that is no site's: refused before any ACME traffic.
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "evil.example.net"}); err == nil {
		t.Fatal("certificate for a refused name")
	}
	mu.Lock()
	if len(asked) != 1 || asked[0] != "evil.example.net" {
		t.Errorf("decision asked for %v", asked)
	}
	mu.Unlock()

	// (An allowed name would go on to the CA; certmagic keeps retrying an
	// unreachable one for minutes, so that path is left to a real ACME
	// server: TestIssueFromPebble.)
}

func TestHTTPChallengeHandlerPassesThrough(t *testing.T) {
	m, err := New(Config{Dir: t.TempDir(), CA: closedURL(t), Allow: func(context.Context, string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	h := m.HTTPChallengeHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://blog.example.com/hello", nil))
	if rec.Code != 299 {
		t.Errorf("ordinary request: %d", rec.Code)
	}
}

func TestConfigRequired(t *testing.T) {
	if _, err := New(Config{Dir: t.TempDir()}); err == nil {
		t.Error("no Allow accepted")
	}
}
