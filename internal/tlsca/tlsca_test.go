package tlsca

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestCAPersistedAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	ca1, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{KeyFile: 0o600, CertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode = %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	root := ca1.Certificate()
	if !root.IsCA || root.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("root: IsCA=%v alg=%v", root.IsCA, root.PublicKeyAlgorithm)
	}
	if d := root.NotAfter.Sub(root.NotBefore); d < 9*365*24*time.Hour {
		t.Errorf("root validity %v, want ~10 years", d)
	}
	ca2, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca2.Certificate().Raw, root.Raw) {
		t.Fatal("second New created a new root instead of reusing the stored one")
	}
	// A leaf issued by the second instance verifies against the first's root.
	leaf, err := ca2.Leaf("blog.localhost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "blog.localhost", Roots: ca1.Pool()}); err != nil {
		t.Fatal(err)
	}
}

func TestHalfCARefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(Config{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, CertFile))
	if _, err := New(Config{Dir: dir}); err == nil {
		t.Fatal("a key without its certificate was accepted (or silently replaced)")
	}
}

func TestLeafSANs(t *testing.T) {
	ca, err := New(Config{Dir: t.TempDir(), Allow: func(n string) bool { return n == "blog.localhost" || n == "shop.example.com" }})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf("Blog.Localhost.")
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.Leaf.DNSNames) != 1 || leaf.Leaf.DNSNames[0] != "blog.localhost" || len(leaf.Leaf.IPAddresses) != 0 {
		t.Errorf("SANs = %v %v", leaf.Leaf.DNSNames, leaf.Leaf.IPAddresses)
	}
	opts := x509.VerifyOptions{DNSName: "blog.localhost", Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := leaf.Leaf.Verify(opts); err != nil {
		t.Errorf("verify: %v", err)
	}
	opts.DNSName = "other.localhost"
	if _, err := leaf.Leaf.Verify(opts); err == nil {
		t.Error("leaf for blog.localhost verifies for other.localhost")
	}
	// Unknown names are refused, even under .localhost when Allow says no.
	for _, name := range []string{"evil.com", "other.localhost", "example.com"} {
		if _, err := ca.Leaf(name); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Leaf(%q) err = %v, want ErrNotAllowed", name, err)
		}
	}
	// No SNI: the loopback IPs.
	ipLeaf, err := ca.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"127.0.0.1", "::1"} {
		if _, err := ipLeaf.Leaf.Verify(x509.VerifyOptions{DNSName: ip, Roots: ca.Pool()}); err != nil {
			t.Errorf("IP leaf for %s: %v", ip, err)
		}
	}
	// Cached: the same certificate comes back.
	again, _ := ca.Leaf("blog.localhost")
	if again != leaf {
		t.Error("leaf not cached")
	}
}

func TestDefaultAllowIsLocalhostOnly(t *testing.T) {
	ca, err := New(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Leaf("x.localhost"); err != nil {
		t.Error(err)
	}
	if _, err := ca.Leaf("x.com"); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("x.com: %v", err)
	}
}

func TestLeafRenewal(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ca, err := New(Config{Dir: t.TempDir(), Now: clock, LeafValidity: 7 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	first, err := ca.Leaf("a.localhost")
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Leaf.NotAfter.Sub(clock()); got != 7*24*time.Hour {
		t.Errorf("validity from now = %v, want 168h", got)
	}
	advance(3 * 24 * time.Hour) // less than two thirds: kept
	if l, _ := ca.Leaf("a.localhost"); l != first {
		t.Error("leaf replaced too early")
	}
	advance(2 * 24 * time.Hour) // 5 days: past two thirds of 7 (+5 min back-dating)
	second, err := ca.Leaf("a.localhost")
	if err != nil {
		t.Fatal(err)
	}
	if second == first || !second.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Fatalf("leaf not renewed: %v → %v", first.Leaf.NotAfter, second.Leaf.NotAfter)
	}
	if _, err := second.Leaf.Verify(x509.VerifyOptions{DNSName: "a.localhost", Roots: ca.Pool(), CurrentTime: clock()}); err != nil {
		t.Error(err)
	}
}

func TestIsInternalName(t *testing.T) {
	for name, want := range map[string]bool{
		"blog.localhost": true, "localhost": true, "shop.test": true, "x.internal": true,
		"127.0.0.1": true, "::1": true, "intranet": true, "": true, "BLOG.LOCALHOST.": true,
		"example.com": false, "blog.example.org": false, "localhost.com": false,
	} {
		if got := IsInternalName(name); got != want {
			t.Errorf("IsInternalName(%q) = %v, want %v", name, got, want)
		}
	}
}

type fakeSource struct{ names []string }

func (f *fakeSource) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.names = append(f.names, h.ServerName)
	return &tls.Certificate{}, nil
}

func TestSelector(t *testing.T) {
	ca, err := New(Config{Dir: t.TempDir(), Allow: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	pub := &fakeSource{}
	s := &Selector{Internal: ca, Public: pub}
	for name, want := range map[string]string{
		"blog.localhost": SourceInternal, "shop.test": SourceInternal, "": SourceInternal, "10.0.0.1": SourceInternal,
		"intranet": SourceInternal, "blog.example.com": SourceACME, "www.aipress.io": SourceACME,
	} {
		if got := s.Source(name); got != want {
			t.Errorf("Source(%q) = %s, want %s", name, got, want)
		}
	}
	c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "blog.localhost"})
	if err != nil || c.Leaf == nil || len(pub.names) != 0 {
		t.Fatalf("internal name went to %v (err %v)", pub.names, err)
	}
	if _, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "blog.example.com"}); err != nil || len(pub.names) != 1 {
		t.Fatalf("public name: %v %v", pub.names, err)
	}
	// TLS-ALPN-01 challenges always go to ACME.
	if _, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "blog.example.com", SupportedProtos: []string{ACMETLS1Protocol}}); err != nil || len(pub.names) != 2 {
		t.Fatalf("alpn challenge: %v %v", pub.names, err)
	}
	// Without a public source every name uses the internal CA.
	s2 := &Selector{Internal: ca}
	if s2.Source("blog.example.com") != SourceInternal {
		t.Error("no public source, still ACME")
	}
}

// A real handshake over HTTP/2 with a client trusting only ca.crt.
func TestServeHTTP2(t *testing.T) {
	dir := t.TempDir()
	ca, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto+" "+r.TLS.ServerName)
	}))
	srv.TLS = ServerConfig(ca, false)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	pemBytes, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "blog.localhost"},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://127.0.0.1:" + port + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(b) != "HTTP/2.0 blog.localhost" {
		t.Errorf("proto %d body %q", resp.ProtoMajor, b)
	}
	// An unknown name fails the handshake.
	tr2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "evil.com"}}
	defer tr2.CloseIdleConnections()
	if _, err := (&http.Client{Transport: tr2}).Get("https://127.0.0.1:" + port + "/"); err == nil {
		t.Error("handshake for evil.com succeeded")
	}
}
