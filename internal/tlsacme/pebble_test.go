package tlsacme

// An issuance test against Let's Encrypt's Pebble ACME server, run in
// process on loopback. Pebble is imported only here, so it is linked into
// this package's test binary and into no production binary.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/aipress/aipress/internal/tlsca"
)

// syncBuffer collects Pebble's and certmagic's logs; they are printed only
// when the test fails (Pebble's goroutines outlive the test, so they must
// not log through t).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// loopbackDNS serves, over TCP on a loopback port (Pebble's VA queries its
// custom resolver over TCP), A 127.0.0.1 for every name and no AAAA, so
// Pebble validates challenges against listeners on this machine.
func loopbackDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Net: "tcp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		for _, q := range req.Question {
			if q.Qtype == dns.TypeA && q.Qclass == dns.ClassINET {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

func freeLoopbackListener(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// pebble is an in-process Pebble: the ACME directory URL, the roots for its
// HTTPS, its CA's root certificate, and how many new-order requests it has
// received.
type pebble struct {
	dirURL    string
	httpsRoot *x509.CertPool
	caRoot    *x509.Certificate
	newOrders atomic.Int64
}

// startPebble runs Pebble on loopback; its VA validates HTTP-01 on
// httpPort and TLS-ALPN-01 on tlsPort of 127.0.0.1 (via loopbackDNS).
func startPebble(t *testing.T, logs *syncBuffer, httpPort, tlsPort int) *pebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logger := log.New(logs, "pebble ", log.Lmicroseconds)
	store := db.NewMemoryStore()
	pca := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "The default profile"},
	})
	pva := va.New(logger, httpPort, tlsPort, false, loopbackDNS(t), store)
	front := wfe.New(logger, store, pva, pca, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	p := &pebble{caRoot: pca.GetRootCert(0).Cert}
	h := front.Handler()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.newOrders.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.dirURL = srv.URL + wfe.DirectoryPath
	p.httpsRoot = x509.NewCertPool()
	p.httpsRoot.AddCert(srv.Certificate())
	return p
}

// serveTLS accepts connections on ln with cfg and completes each handshake
// (bounded by timeout), as the edge does before serving HTTP.
func serveTLS(ln net.Listener, cfg *tls.Config, timeout time.Duration) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			tc := tls.Server(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 1)) // hold the connection until the client closes
		}()
	}
}

// TestIssueFromPebble obtains a certificate on demand from Pebble, once per
// challenge type: Pebble's VA is pointed at the edge's listener for that
// challenge and at a closed port for the other, so the test does not depend
// on which type certmagic happens to try first (if it picks the unreachable
// one, that order fails and it retries with the other).
func TestIssueFromPebble(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an ACME server")
	}
	for _, chal := range []string{"http-01", "tls-alpn-01"} {
		t.Run(chal, func(t *testing.T) { testIssueFromPebble(t, chal) })
	}
}

func testIssueFromPebble(t *testing.T, chal string) {
	const (
		site    = "shop.example.com"
		refused = "evil.example.net"
		timeout = 90 * time.Second
	)
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble and certmagic logs:\n%s", logs.String())
		}
	})

	// The edge's listeners: TLS (TLS-ALPN-01 and the served certificate) and
	// plain HTTP (HTTP-01), both on loopback ports.
	tlsLn, tlsPort := freeLoopbackListener(t)
	httpLn, httpPort := freeLoopbackListener(t)
	closedLn, closedPort := freeLoopbackListener(t)
	closedLn.Close()
	vaHTTP, vaTLS := httpPort, tlsPort
	if chal == "http-01" {
		vaTLS = closedPort
	} else {
		vaHTTP = closedPort
	}
	p := startPebble(t, logs, vaHTTP, vaTLS)

	var mu sync.Mutex
	var asked []string
	m, err := New(Config{
		Dir: t.TempDir(), CA: p.dirURL, Email: "ops@shop.example.com",
		TrustedRoots: p.httpsRoot,
		Allow: func(_ context.Context, name string) error {
			mu.Lock()
			asked = append(asked, name)
			mu.Unlock()
			if name == site {
				return nil
			}
			return fmt.Errorf("%q is not the domain of a site", name)
		},
		// certmagic finds these ports taken by the edge's listeners and
		// leaves the challenges to them, instead of binding 80 and 443.
		AltHTTPPort: httpPort, AltTLSALPNPort: tlsPort,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)

	// Wired as in edgenode.newExtras: the selector sends public names
	// (and acme-tls/1 handshakes) to the ACME manager.
	internal, err := tlsca.New(tlsca.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sel := &tlsca.Selector{Internal: internal, Public: m}
	if got := sel.Source(site); got != tlsca.SourceACME {
		t.Fatalf("selector source for %s: %s", site, got)
	}
	var alpnAnswered, httpAnswered atomic.Int64 // challenges the edge answered
	cfg := tlsca.ServerConfig(sel, true)
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := sel.GetCertificate(hello)
		if err == nil && slices.Contains(hello.SupportedProtos, tlsca.ACMETLS1Protocol) {
			alpnAnswered.Add(1)
		}
		return c, err
	}
	go serveTLS(tlsLn, cfg, timeout)
	chalHandler := m.HTTPChallengeHandler(http.NotFoundHandler())
	httpSrv := &http.Server{ReadHeaderTimeout: timeout, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		chalHandler.ServeHTTP(rec, r)
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") && rec.status == http.StatusOK {
			httpAnswered.Add(1)
		}
	})}
	go func() { _ = httpSrv.Serve(httpLn) }()
	t.Cleanup(func() { httpSrv.Close() })

	pebbleRoots := x509.NewCertPool()
	pebbleRoots.AddCert(p.caRoot)
	handshake := func(name string) (*tls.ConnectionState, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		d := &tls.Dialer{Config: &tls.Config{ServerName: name, RootCAs: pebbleRoots, NextProtos: []string{"h2", "http/1.1"}}}
		c, err := d.DialContext(ctx, "tcp", tlsLn.Addr().String())
		if err != nil {
			return nil, err
		}
		defer c.Close()
		cs := c.(*tls.Conn).ConnectionState()
		return &cs, nil
	}

	// First handshake: certmagic obtains the certificate from Pebble on
	// demand; the client verifies it against Pebble's root and the name.
	cs, err := handshake(site)
	if err != nil {
		t.Fatalf("handshake for %s: %v", site, err)
	}
	leaf := cs.PeerCertificates[0]
	if !slices.Equal(leaf.DNSNames, []string{site}) {
		t.Errorf("leaf names %v, want [%s]", leaf.DNSNames, site)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		DNSName: site, Roots: pebbleRoots, Intermediates: poolOf(cs.PeerCertificates[1:]),
	}); err != nil {
		t.Errorf("leaf does not chain to Pebble's root: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: site, Roots: internal.Pool()}); err == nil {
		t.Error("leaf chains to the internal CA")
	}
	orders := p.newOrders.Load()
	if orders < 1 {
		t.Errorf("%d orders at Pebble after issuance", orders)
	}
	// The challenge was answered by the edge listener Pebble could reach.
	switch a, h := alpnAnswered.Load(), httpAnswered.Load(); {
	case chal == "http-01" && (h == 0 || a != 0), chal == "tls-alpn-01" && (a == 0 || h != 0):
		t.Errorf("%s: edge answered %d TLS-ALPN-01 and %d HTTP-01 challenge requests", chal, a, h)
	}

	// The certificate metrics see the served certificate, and nothing for
	// a name without one.
	leaves := m.Leaves([]string{site, refused})
	if got, ok := leaves[site]; !ok || !bytes.Equal(got.Raw, leaf.Raw) {
		t.Errorf("Leaves(%s) = %v (present %v), want the served certificate (expires %v)", site, got, ok, leaf.NotAfter)
	}
	if len(leaves) != 1 {
		t.Errorf("Leaves has %d certificates, want 1", len(leaves))
	}

	// Second handshake: served from certmagic's cache, no new order.
	cs2, err := handshake(site)
	if err != nil {
		t.Fatalf("second handshake for %s: %v", site, err)
	}
	if !bytes.Equal(cs2.PeerCertificates[0].Raw, leaf.Raw) {
		t.Error("second handshake served a different certificate")
	}

	// A name the decision function refuses: no certificate, no order.
	if _, err := handshake(refused); err == nil {
		t.Errorf("handshake for refused %s succeeded", refused)
	} else if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("handshake for refused %s timed out", refused)
	}
	if got := p.newOrders.Load(); got != orders {
		t.Errorf("orders at Pebble went from %d to %d after the second and refused handshakes", orders, got)
	}
	mu.Lock()
	if !slices.Contains(asked, refused) {
		t.Errorf("decision function not asked about %s (asked %v)", refused, asked)
	}
	mu.Unlock()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func poolOf(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
