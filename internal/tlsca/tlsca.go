// Package tlsca is the edge's internal certificate authority, like Caddy's
// `tls internal`: on first use it creates a root CA (ECDSA P-256, valid ten
// years) in a directory (ca.key 0600, ca.crt 0644), reuses it on every
// later start, and issues short-lived leaf certificates on demand during
// TLS handshakes for the names the platform serves.
//
// Browsers and clients trust the leaves once they trust ca.crt. The CA is
// meant for development names (*.localhost, *.test, *.internal), loopback
// IPs and private deployments; public domains get ACME certificates (see
// package tlsacme) through a Selector.
//
// It also holds the pieces shared by both kinds of certificates: the
// Selector that picks internal CA or ACME for a handshake, IsInternalName
// and ServerConfig (HTTP/2 on).
package tlsca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// File names in the CA directory.
const (
	KeyFile  = "ca.key"
	CertFile = "ca.crt"
)

// Defaults for zero Config fields.
const (
	DefaultRootValidity = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 7 * 24 * time.Hour
)

// ErrNotAllowed is returned (wrapped) for a name the platform does not serve.
var ErrNotAllowed = errors.New("tlsca: name not served here")

// Config configures a CA.
type Config struct {
	// Dir holds ca.key and ca.crt; created (0700) if missing. Required.
	Dir string
	// Allow reports whether a leaf may be issued for a (lower-case) DNS
	// name. Nil allows only names under .localhost and localhost itself.
	Allow func(name string) bool
	// LeafValidity is the lifetime of issued leaves; they are renewed once
	// two thirds of it has passed. Zero: DefaultLeafValidity.
	LeafValidity time.Duration
	// Now is the clock. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// CA is a loaded root CA and its in-memory cache of leaves. It is safe for
// concurrent use.
type CA struct {
	cfg     Config
	log     *slog.Logger
	key     crypto.Signer
	cert    *x509.Certificate
	certPEM []byte

	mu     sync.Mutex
	leaves map[string]*tls.Certificate // by name; "" = loopback IPs
}

// New loads the CA from cfg.Dir, creating it on first use.
func New(cfg Config) (*CA, error) {
	if cfg.Dir == "" {
		return nil, errors.New("tlsca: no directory")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LeafValidity <= 0 {
		cfg.LeafValidity = DefaultLeafValidity
	}
	if cfg.Allow == nil {
		cfg.Allow = IsLocalhost
	}
	c := &CA{cfg: cfg, log: cfg.Logger, leaves: map[string]*tls.Certificate{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *CA) load() error {
	keyPath, certPath := filepath.Join(c.cfg.Dir, KeyFile), filepath.Join(c.cfg.Dir, CertFile)
	keyPEM, kerr := os.ReadFile(keyPath)
	certPEM, cerr := os.ReadFile(certPath)
	switch {
	case kerr == nil && cerr == nil:
		return c.parse(keyPEM, certPEM)
	case errors.Is(kerr, os.ErrNotExist) && errors.Is(cerr, os.ErrNotExist):
		return c.create(keyPath, certPath)
	case kerr != nil && !errors.Is(kerr, os.ErrNotExist):
		return fmt.Errorf("tlsca: %w", kerr)
	case cerr != nil && !errors.Is(cerr, os.ErrNotExist):
		return fmt.Errorf("tlsca: %w", cerr)
	default:
		// One file without the other: refuse to guess (a new root would
		// silently invalidate what clients trust).
		return fmt.Errorf("tlsca: %s and %s must both exist or both be absent", keyPath, certPath)
	}
}

func (c *CA) parse(keyPEM, certPEM []byte) error {
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return fmt.Errorf("tlsca: %s: no PEM block", KeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return fmt.Errorf("tlsca: %s: %w", KeyFile, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return fmt.Errorf("tlsca: %s: not a signing key", KeyFile)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil {
		return fmt.Errorf("tlsca: %s: no PEM block", CertFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return fmt.Errorf("tlsca: %s: %w", CertFile, err)
	}
	if !cert.IsCA {
		return fmt.Errorf("tlsca: %s is not a CA certificate", CertFile)
	}
	if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(signer.Public()) {
		return fmt.Errorf("tlsca: %s does not match %s", CertFile, KeyFile)
	}
	if c.cfg.Now().After(cert.NotAfter) {
		return fmt.Errorf("tlsca: root certificate %s expired on %s; move ca.key and ca.crt away to create a new one", CertFile, cert.NotAfter.Format(time.DateOnly))
	}
	c.key, c.cert, c.certPEM = signer, cert, certPEM
	return nil
}

func (c *CA) create(keyPath, certPath string) error {
	if err := os.MkdirAll(c.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("tlsca: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tlsca: %w", err)
	}
	now := c.cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"AIPress"}, CommonName: "AIPress Local CA " + now.UTC().Format(time.DateOnly)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(DefaultRootValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("tlsca: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("tlsca: %w", err)
	}
	// The key first: a crash between the two writes leaves a key without a
	// certificate, which load refuses loudly rather than replacing.
	if err := writeAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeAtomic(certPath, certPEM, 0o644); err != nil {
		return err
	}
	cert, _ := x509.ParseCertificate(der)
	c.key, c.cert, c.certPEM = key, cert, certPEM
	c.log.Info("created the internal TLS root CA; trust it in clients to avoid warnings", "cert", certPath)
	return nil
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("tlsca: %w", err)
	}
	if err := os.Chmod(tmp, mode); err != nil { // umask
		return fmt.Errorf("tlsca: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tlsca: %w", err)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

// Certificate returns the root certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// CertPEM returns the root certificate in PEM form (the content of ca.crt).
func (c *CA) CertPEM() []byte { return append([]byte(nil), c.certPEM...) }

// Pool returns a pool holding only the root, for clients and tests.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.cert)
	return p
}

// GetCertificate implements tls.Config.GetCertificate: a leaf for the
// hello's server name if Allow accepts it, or for 127.0.0.1 and ::1 when
// the client sent no server name.
func (c *CA) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.Leaf(hello.ServerName)
}

// Leaf returns a cached or new leaf certificate for name ("" means the
// loopback IPs). It fails with ErrNotAllowed for names Allow refuses.
func (c *CA) Leaf(name string) (*tls.Certificate, error) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name != "" && !c.cfg.Allow(name) {
		return nil, fmt.Errorf("%w: %q", ErrNotAllowed, name)
	}
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.leaves[name]; l != nil && now.Before(renewAt(l.Leaf)) {
		return l, nil
	}
	l, err := c.issue(name, now)
	if err != nil {
		return nil, err
	}
	c.leaves[name] = l
	return l, nil
}

// renewAt is when a leaf is replaced: after two thirds of its lifetime.
func renewAt(l *x509.Certificate) time.Time {
	return l.NotBefore.Add(l.NotAfter.Sub(l.NotBefore) * 2 / 3)
}

func (c *CA) issue(name string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsca: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		NotBefore:    now.Add(-5 * time.Minute), // clock skew
		NotAfter:     now.Add(c.cfg.LeafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(c.cert.NotAfter) {
		tmpl.NotAfter = c.cert.NotAfter
	}
	switch ip := net.ParseIP(name); {
	case name == "":
		tmpl.Subject.CommonName = "127.0.0.1"
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	case ip != nil:
		tmpl.Subject.CommonName = name
		tmpl.IPAddresses = []net.IP{ip}
	default:
		tmpl.Subject.CommonName = name
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return nil, fmt.Errorf("tlsca: issue %q: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlsca: issue %q: %w", name, err)
	}
	c.log.Debug("issued internal certificate", "name", name, "not_after", leaf.NotAfter)
	return &tls.Certificate{Certificate: [][]byte{der, c.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// IsLocalhost reports whether name is localhost or under .localhost.
func IsLocalhost(name string) bool {
	return name == "localhost" || strings.HasSuffix(name, ".localhost")
}

// IsInternalName reports whether name can only get a certificate from the
// internal CA: IP addresses, single-label names and names under .localhost,
// .test, .internal, .local, .example and .invalid, which no public CA
// issues for.
func IsInternalName(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" || net.ParseIP(name) != nil || !strings.Contains(name, ".") {
		return true
	}
	for _, tld := range []string{".localhost", ".test", ".internal", ".local", ".example", ".invalid"} {
		if strings.HasSuffix(name, tld) {
			return true
		}
	}
	return false
}
