// Package mtls gives AIPress's processes identities for the one channel
// between edges and shards on other machines (a shard agent's gateway, see
// internal/platform/shardagent): a certificate authority the control plane holds,
// certificates that name a role and a name (aipress://shard/NAME,
// aipress://edge/NAME, aipress://control/REPLICA: the control plane reading
// sites' logs), and TLS configurations that require and verify them
// on both ends.
//
// Identities are URIs in the certificate's subject alternative names,
// verified against the platform's CA alone (never the system roots), so a
// public certificate, another shard's certificate or a site's PHP (which has
// no key) cannot pass for an edge or for the shard a route names. Host names
// are not checked: a shard's address comes from its own registration and
// what counts is that the peer holds the key of the expected identity.
//
// The CA key is derived (HKDF-SHA256) from a secret the control plane
// keeps — its platform secret, the first backup key-encryption key's bytes
// (repos.LoadPlatformSecret) — so every control-plane replica that shares
// that secret issues certificates under the same CA. Certificates are short-lived
// (DefaultTTL) and renewed by their holders (Credentials.Keep) through the
// control plane's API, authenticated by their shard or edge token.
//
// Written on crypto/x509 and crypto/tls rather than a PKI library: the
// whole need is one self-signed CA, leaf issuance from a CSR and an
// identity check in VerifyConnection, which the standard library covers.
package mtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"time"
)

// Role is what a certificate's holder is.
type Role string

// Roles of the mesh.
const (
	RoleShard Role = "shard"
	RoleEdge  Role = "edge"
	// RoleControl is a control-plane replica's: it reads sites' logs
	// from shards' gateways and edges (package logmesh). Only the control
	// plane, which holds the CA, issues itself such a certificate; no API
	// call issues one.
	RoleControl Role = "control"
)

// Identity is a certificate's holder: a role and a name (a shard's name, an
// edge token's subject).
type Identity struct {
	Role Role
	Name string
}

// scheme is the URI scheme of identities in certificates.
const scheme = "aipress"

var nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// Valid reports whether id can be put in a certificate.
func (id Identity) Valid() error {
	if id.Role != RoleShard && id.Role != RoleEdge && id.Role != RoleControl {
		return fmt.Errorf("mtls: unknown role %q", id.Role)
	}
	if !nameRe.MatchString(id.Name) {
		return fmt.Errorf("mtls: name %q is not a valid %s name", id.Name, id.Role)
	}
	return nil
}

// URI is the identity as it appears in a certificate.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: scheme, Host: string(id.Role), Path: "/" + id.Name}
}

func (id Identity) String() string { return id.URI().String() }

// IdentityOf returns the one identity URI of cert.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != scheme {
			continue
		}
		id := Identity{Role: Role(u.Host), Name: u.Path}
		if len(id.Name) > 0 && id.Name[0] == '/' {
			id.Name = id.Name[1:]
		}
		if id.Valid() == nil && u.RawQuery == "" && u.Fragment == "" && u.User == nil {
			found = append(found, id)
		}
	}
	if len(found) != 1 {
		return Identity{}, fmt.Errorf("mtls: certificate %q carries %d identities, want 1", cert.Subject.CommonName, len(found))
	}
	return found[0], nil
}

// DefaultTTL is how long an issued certificate is valid.
const DefaultTTL = 7 * 24 * time.Hour

// Authority issues the platform's certificates: one generation of the
// platform's CA (see CA for rotation).
type Authority struct {
	gen     int
	key     *ecdsa.PrivateKey
	cert    *x509.Certificate
	certPEM []byte
	clock   func() time.Time
}

// caInfo labels the first generation's key derivation; another label gives
// another key (genInfo).
const caInfo = "aipress mesh ca v1"

// genInfo labels generation gen's key derivation: generation 1 is the CA
// of installs from before rotation existed.
func genInfo(gen int) string {
	if gen == 1 {
		return caInfo
	}
	return fmt.Sprintf("aipress mesh ca gen %d", gen)
}

// NewAuthority derives the CA's first generation from secret (at least 32
// bytes, e.g. the backup key-encryption key). The same secret gives the
// same CA key, so certificates issued by one control-plane replica verify
// under another's CA certificate. clock may be nil (time.Now).
func NewAuthority(secret []byte, clock func() time.Time) (*Authority, error) {
	return NewAuthorityGen(secret, 1, clock)
}

// NewAuthorityGen derives generation gen (1, 2, …) of the CA from secret:
// every generation has its own key (HKDF info "aipress mesh ca gen N";
// generation 1 keeps "aipress mesh ca v1") and its own subject, and every
// replica sharing secret derives the same one.
func NewAuthorityGen(secret []byte, gen int, clock func() time.Time) (*Authority, error) {
	if len(secret) < 32 {
		return nil, errors.New("mtls: CA secret must be at least 32 bytes")
	}
	if gen < 1 || gen > MaxGeneration {
		return nil, fmt.Errorf("mtls: CA generation %d out of range 1..%d", gen, MaxGeneration)
	}
	if clock == nil {
		clock = time.Now
	}
	key, err := deriveKey(secret, genInfo(gen))
	if err != nil {
		return nil, err
	}
	// Everything but the signature is fixed, so every replica's CA
	// certificate names the same key, subject and serial.
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	ski := sha256.Sum256(pub)
	subject := pkix.Name{CommonName: "AIPress platform CA", Organization: []string{"AIPress"}}
	if gen > 1 {
		// Chains are built by subject too: each generation has its own.
		subject.CommonName = fmt.Sprintf("AIPress platform CA generation %d", gen)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(ski[:16]),
		Subject:               subject,
		NotBefore:             time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("mtls: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("mtls: CA certificate: %w", err)
	}
	return &Authority{gen: gen, key: key, cert: cert, clock: clock,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Generation is the authority's generation.
func (a *Authority) Generation() int { return a.gen }

// deriveKey maps secret to a P-256 private key: an HKDF output reduced into
// [1, n-1].
func deriveKey(secret []byte, info string) (*ecdsa.PrivateKey, error) {
	okm, err := hkdf.Key(sha256.New, secret, nil, info, 48)
	if err != nil {
		return nil, fmt.Errorf("mtls: derive CA key: %w", err)
	}
	n := elliptic.P256().Params().N
	d := new(big.Int).SetBytes(okm)
	d.Mod(d, new(big.Int).Sub(n, big.NewInt(1)))
	d.Add(d, big.NewInt(1))
	raw := make([]byte, 32)
	d.FillBytes(raw)
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		return nil, fmt.Errorf("mtls: derive CA key: %w", err)
	}
	return key, nil
}

// CertPEM is the CA certificate, PEM-encoded.
func (a *Authority) CertPEM() []byte { return append([]byte(nil), a.certPEM...) }

// MaxCSRBytes bounds a certificate request.
const MaxCSRBytes = 8 << 10

// Issue signs a certificate for id with the public key of the PEM
// certificate request csrPEM (whose signature must verify; its subject and
// names are ignored: the identity is the caller's, as the API
// authenticated it). The certificate is valid for ttl (DefaultTTL when
// zero) for both client and server authentication.
func (a *Authority) Issue(csrPEM []byte, id Identity, ttl time.Duration) (certPEM []byte, notAfter time.Time, err error) {
	if err := id.Valid(); err != nil {
		return nil, time.Time{}, err
	}
	if len(csrPEM) > MaxCSRBytes {
		return nil, time.Time{}, fmt.Errorf("mtls: certificate request larger than %d bytes", MaxCSRBytes)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, time.Time{}, errors.New("mtls: not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("mtls: certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, time.Time{}, fmt.Errorf("mtls: certificate request: %w", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, time.Time{}, errors.New("mtls: certificate request: ECDSA keys must be P-256 or P-384")
		}
	default:
		return nil, time.Time{}, fmt.Errorf("mtls: certificate request: %T keys are not accepted (ECDSA P-256)", csr.PublicKey)
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("mtls: serial: %w", err)
	}
	now := a.clock()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: string(id.Role) + " " + id.Name, Organization: []string{"AIPress"}},
		URIs:         []*url.URL{id.URI()},
		NotBefore:    now.Add(-5 * time.Minute), // clock skew between machines
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, csr.PublicKey, a.key)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("mtls: issue: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), tmpl.NotAfter, nil
}
