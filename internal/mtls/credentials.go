package mtls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Files of a Credentials directory (0700, files 0600).
const (
	keyFile  = "key.pem"
	certFile = "cert.pem"
	caFile   = "ca.pem"
)

// Credentials are one process's identity: its private key (generated once
// and kept in its directory), its current certificate and the platform's CA
// certificate. They give the TLS configurations of the gateway (server)
// and of edges (client), which always use the newest certificate
// installed. Safe for concurrent use.
type Credentials struct {
	dir  string
	self Identity
	key  *ecdsa.PrivateKey

	mu   sync.RWMutex
	cert *tls.Certificate // nil until one is installed
	leaf *x509.Certificate
	pool *x509.CertPool
	// cas are the trusted CAs' subject key IDs (a resumed session's peer
	// must still have been issued by one); bundle is their BundleID.
	cas    map[string]bool
	bundle string

	// clients are ClientTLS's configurations by peer and protocols: one
	// per peer, so its session cache resumes TLS sessions (a full
	// handshake per connection costs about a millisecond of CPU).
	clients sync.Map
}

// LoadCredentials opens (creating it when missing) the credentials
// directory dir of the process with identity self: the key is generated on
// first use; a certificate and CA from an earlier run are loaded when they
// still match the key and self (an expired one is loaded too: Keep renews
// it).
func LoadCredentials(dir string, self Identity) (*Credentials, error) {
	if err := self.Valid(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	c := &Credentials{dir: dir, self: self}
	key, err := loadOrCreateKey(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, err
	}
	c.key = key
	certPEM, err1 := os.ReadFile(filepath.Join(dir, certFile))
	caPEM, err2 := os.ReadFile(filepath.Join(dir, caFile))
	if err1 == nil && err2 == nil {
		// A pair that no longer fits (another key, another name) is
		// replaced by the next issue.
		_ = c.set(certPEM, caPEM)
	}
	return c, nil
}

func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		block, _ := pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("mtls: %s is not PEM; remove it to make a new key", path)
		}
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("mtls: %s: %w; remove it to make a new key", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mtls: generate key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	if err := writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	return k, nil
}

// writeFile replaces path atomically with a 0600 file.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("mtls: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("mtls: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("mtls: %w", err)
	}
	return nil
}

// Self is the identity these credentials hold.
func (c *Credentials) Self() Identity { return c.self }

// CSR returns a PEM certificate request for the credentials' key.
func (c *Credentials) CSR() ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: string(c.self.Role) + " " + c.self.Name},
	}, c.key)
	if err != nil {
		return nil, fmt.Errorf("mtls: certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// Install checks that certPEM is a certificate for the credentials' key and
// identity issued by a CA of the bundle caPEM (one or more CA
// certificates: during a CA rotation the old and the new), then keeps both
// (in memory and on disk). Peers are trusted when a CA of the bundle issued
// their certificate.
func (c *Credentials) Install(certPEM, caPEM []byte) error {
	if err := c.set(certPEM, caPEM); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(c.dir, caFile), caPEM); err != nil {
		return err
	}
	return writeFile(filepath.Join(c.dir, certFile), certPEM)
}

func (c *Credentials) set(certPEM, caPEM []byte) error {
	cas, err := parseBundle(caPEM)
	if err != nil {
		return err
	}
	bundle, err := BundleID(caPEM)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	trusted := map[string]bool{}
	for _, ca := range cas {
		pool.AddCert(ca)
		trusted[string(ca.SubjectKeyId)] = true
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("mtls: no certificate in the answer")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("mtls: certificate: %w", err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&c.key.PublicKey) {
		return errors.New("mtls: the certificate is not for this key")
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return err
	}
	if id != c.self {
		return fmt.Errorf("mtls: the certificate names %s, not %s", id, c.self)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: leaf.NotBefore.Add(time.Minute),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("mtls: the certificate does not chain to the CA: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: c.key, Leaf: leaf}
	c.leaf = leaf
	c.pool = pool
	c.cas = trusted
	c.bundle = bundle
	return nil
}

// Bundle is the BundleID of the CAs these credentials trust ("" when none
// is installed).
func (c *Credentials) Bundle() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.bundle
}

// Ready reports whether a certificate is installed and valid at now.
func (c *Credentials) Ready(now time.Time) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.leaf != nil && now.After(c.leaf.NotBefore) && now.Before(c.leaf.NotAfter)
}

// NeedsRenewal reports whether the certificate is missing, expired or
// within the last third of its validity at now.
func (c *Credentials) NeedsRenewal(now time.Time) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.leaf == nil {
		return true
	}
	life := c.leaf.NotAfter.Sub(c.leaf.NotBefore)
	return now.After(c.leaf.NotAfter.Add(-life / 3))
}

// NotAfter is when the current certificate expires (zero: none).
func (c *Credentials) NotAfter() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.leaf == nil {
		return time.Time{}
	}
	return c.leaf.NotAfter
}

// Leaf is the current certificate (nil: none yet); callers must not
// modify it.
func (c *Credentials) Leaf() *x509.Certificate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.leaf
}

func (c *Credentials) current() (*tls.Certificate, *x509.CertPool, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cert == nil {
		return nil, nil, fmt.Errorf("mtls: %s has no certificate yet", c.self)
	}
	return c.cert, c.pool, nil
}

// trusts reports whether leaf's issuer is a CA of the installed bundle.
func (c *Credentials) trusts(leaf *x509.Certificate) bool { return c.trustsCA(leaf.AuthorityKeyId) }

// trustsCA reports whether the CA of subject key ID ski is in the
// installed bundle.
func (c *Credentials) trustsCA(ski []byte) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(ski) > 0 && c.cas[string(ski)]
}

// verifyPeer checks that a peer's chain leads to the CA and that its leaf
// names one of want (any name of the role when a want's Name is empty).
func (c *Credentials) verifyPeer(cs tls.ConnectionState, usage x509.ExtKeyUsage, want Identity) (Identity, error) {
	_, pool, err := c.current()
	if err != nil {
		return Identity{}, err
	}
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, errors.New("mtls: the peer sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, ic := range cs.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	leaf := cs.PeerCertificates[0]
	switch {
	case cs.DidResume:
		// A resumed session carries the chain this function verified when
		// the session was made (tickets are sealed by the server's key,
		// sessions kept in this process): only its expiry can have
		// changed, or its CA left the bundle (a finished CA rotation).
		// Verifying the chain again would cost two ECDSA verifications
		// per connection.
		if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			return Identity{}, fmt.Errorf("%w: its peer certificate has expired", ErrStaleSession)
		}
		if !c.trusts(leaf) {
			return Identity{}, fmt.Errorf("%w: its peer certificate is of a CA no longer trusted", ErrStaleSession)
		}
	default:
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return Identity{}, fmt.Errorf("mtls: peer certificate: %w", err)
		}
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return Identity{}, err
	}
	if id.Role != want.Role || (want.Name != "" && id.Name != want.Name) {
		return Identity{}, fmt.Errorf("mtls: the peer is %s, want %s", id, want)
	}
	return id, nil
}

// curves are the key exchanges of the platform's own connections: X25519
// alone. Go's default also offers X25519MLKEM768 (post-quantum hybrid),
// which doubled the CPU of every gateway connection (one per uncached PHP
// request) for traffic inside the platform's own network.
var curves = []tls.CurveID{tls.X25519}

// ServerTLS is the configuration of a server that admits only clients of
// role accept holding a certificate of the platform's CA. nextProtos are
// its ALPN protocols.
func (c *Credentials) ServerTLS(accept Role, nextProtos ...string) *tls.Config {
	return c.serverTLS(func(string) (Role, bool) { return accept, true }, nextProtos)
}

// ServerTLSByProto is the configuration of a server whose ALPN protocols
// admit different roles: a client is admitted only when its certificate
// (of the platform's CA) names the role accept gives for the protocol the
// handshake negotiated ("" when the client offered none); a protocol
// absent from accept admits nobody. nextProtos are the server's ALPN
// protocols, in order of preference.
func (c *Credentials) ServerTLSByProto(accept map[string]Role, nextProtos ...string) *tls.Config {
	roles := maps.Clone(accept)
	return c.serverTLS(func(proto string) (Role, bool) { r, ok := roles[proto]; return r, ok }, nextProtos)
}

func (c *Credentials) serverTLS(accept func(proto string) (Role, bool), nextProtos []string) *tls.Config {
	cfg := &tls.Config{
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: curves,
		NextProtos:       nextProtos,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, _, err := c.current()
			return cert, err
		},
		// Verified in VerifyConnection against the platform's CA alone.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			role, ok := accept(cs.NegotiatedProtocol)
			if !ok {
				return fmt.Errorf("mtls: protocol %q admits no client here", cs.NegotiatedProtocol)
			}
			_, err := c.verifyPeer(cs, x509.ExtKeyUsageClientAuth, Identity{Role: role})
			return err
		},
	}
	// A session ticket names the CA of the client's certificate, and a
	// ticket whose CA left the bundle (a finished CA rotation) is not
	// resumed: the client makes a full handshake with its new
	// certificate instead of failing.
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		if len(cs.PeerCertificates) > 0 {
			ss.Extra = append(ss.Extra, append([]byte(sessionCATag), cs.PeerCertificates[0].AuthorityKeyId...))
		}
		return cfg.EncryptTicket(cs, ss)
	}
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := cfg.DecryptTicket(identity, cs)
		if err != nil || ss == nil {
			return nil, err
		}
		for _, e := range ss.Extra {
			if aki, ok := bytes.CutPrefix(e, []byte(sessionCATag)); ok && c.trustsCA(aki) {
				return ss, nil
			}
		}
		return nil, nil // a full handshake
	}
	return cfg
}

// ErrStaleSession is a client's handshake refused because the session it
// resumed holds a peer certificate that expired or whose CA left the bundle
// since. The client's session cache is kept per bundle, but a CA rotation's
// phase can change the bundle between the cache's lookup and the
// handshake's check: dialling again makes a full handshake (Dial).
var ErrStaleSession = errors.New("mtls: the resumed session is stale")

// Dial dials with d and, when the handshake meets a stale resumed session
// (ErrStaleSession), once more: the new bundle's cache has no such session.
func Dial(ctx context.Context, d *tls.Dialer, network, addr string) (net.Conn, error) {
	conn, err := d.DialContext(ctx, network, addr)
	if errors.Is(err, ErrStaleSession) {
		conn, err = d.DialContext(ctx, network, addr)
	}
	return conn, err
}

// sessionCATag prefixes a session ticket's note of the client's CA.
const sessionCATag = "aipress-ca:"

// bundleSessions is a client's session cache whose sessions are kept per
// CA bundle: a session made under another bundle (before a CA rotation's
// phase) is not resumed, so a server certificate of a CA that left the
// bundle is never met on a resumed session; a full handshake verifies the
// server's current one.
type bundleSessions struct {
	c     *Credentials
	inner tls.ClientSessionCache
}

func (b bundleSessions) Get(key string) (*tls.ClientSessionState, bool) {
	return b.inner.Get(key + "\x00" + b.c.Bundle())
}

func (b bundleSessions) Put(key string, cs *tls.ClientSessionState) {
	b.inner.Put(key+"\x00"+b.c.Bundle(), cs)
}

// ClientTLS is the configuration of a client that talks only to peer (its
// certificate must name exactly that identity) and authenticates with these
// credentials. nextProtos are its ALPN protocols. The configuration is made
// once per peer and protocols and keeps its TLS session cache; it always
// presents the newest certificate installed. Callers must not modify it.
func (c *Credentials) ClientTLS(peer Identity, nextProtos ...string) *tls.Config {
	key := peer.String() + "\x00" + strings.Join(nextProtos, ",")
	if v, ok := c.clients.Load(key); ok {
		return v.(*tls.Config)
	}
	v, _ := c.clients.LoadOrStore(key, c.newClientTLS(peer, nextProtos))
	return v.(*tls.Config)
}

func (c *Credentials) newClientTLS(peer Identity, nextProtos []string) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: curves,
		NextProtos:       nextProtos,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _, err := c.current()
			return cert, err
		},
		// The server's name is not what is checked: its identity is.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if peer.Name == "" {
				return errors.New("mtls: no peer identity to verify")
			}
			_, err := c.verifyPeer(cs, x509.ExtKeyUsageServerAuth, peer)
			return err
		},
		ClientSessionCache: bundleSessions{c: c, inner: tls.NewLRUClientSessionCache(256)},
	}
}

// Issuer asks the control plane for a certificate for csrPEM and returns it
// with the CA bundle.
type Issuer func(ctx context.Context, csrPEM []byte) (certPEM, caPEM []byte, err error)

// BundleSource asks the control plane for its current CA bundle (PEM):
// a cheap read Keep compares with the installed bundle.
type BundleSource func(ctx context.Context) (caPEM []byte, err error)

// Renew issues and installs a new certificate now.
func (c *Credentials) Renew(ctx context.Context, issue Issuer) error {
	csr, err := c.CSR()
	if err != nil {
		return err
	}
	certPEM, caPEM, err := issue(ctx, csr)
	if err != nil {
		return fmt.Errorf("mtls: issue certificate for %s: %w", c.self, err)
	}
	return c.Install(certPEM, caPEM)
}

// Keep renews the certificate whenever NeedsRenewal says so, or when the
// control plane's CA bundle (bundle, when not nil) is not the installed
// one — a CA rotation's phase changed: the renewal installs the new bundle
// and a leaf of the bundle's issuing CA — checking every interval (default
// one minute; failures retry at that pace), until ctx ends. It returns
// only ctx's error.
func (c *Credentials) Keep(ctx context.Context, issue Issuer, bundle BundleSource, interval time.Duration, now func() time.Time, log *slog.Logger) error {
	if interval <= 0 {
		interval = time.Minute
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	failing := false
	for {
		renew := c.NeedsRenewal(now())
		if !renew && bundle != nil {
			if changed, err := c.bundleChanged(ctx, bundle); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				log.Debug("reading the CA bundle", "identity", c.self.String(), "err", err)
			} else if changed {
				log.Info("the CA bundle changed; renewing", "identity", c.self.String())
				renew = true
			}
		}
		if renew {
			if err := c.Renew(ctx, issue); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !failing {
					log.Warn("certificate renewal failed; retrying", "identity", c.self.String(), "err", err)
				}
				failing = true
			} else {
				failing = false
				log.Info("certificate issued", "identity", c.self.String(), "not_after", c.NotAfter())
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// bundleChanged reports whether the control plane's bundle differs from the
// installed one.
func (c *Credentials) bundleChanged(ctx context.Context, bundle BundleSource) (bool, error) {
	pemBytes, err := bundle(ctx)
	if err != nil {
		return false, err
	}
	id, err := BundleID(pemBytes)
	if err != nil {
		return false, err
	}
	return id != c.Bundle(), nil
}
