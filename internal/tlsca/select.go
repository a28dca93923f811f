package tlsca

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
)

// CertSource gives certificates during TLS handshakes. *CA implements it,
// and so does the ACME manager of package tlsacme.
type CertSource interface {
	GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
}

// ACMETLS1Protocol is the ALPN protocol of the ACME TLS-ALPN-01 challenge.
const ACMETLS1Protocol = "acme-tls/1"

// Where a handshake's certificate comes from.
const (
	SourceInternal = "internal"
	SourceACME     = "acme"
)

// Selector picks, per handshake, the internal CA or the public (ACME)
// source: internal names (IsInternalName, and no server name at all) always
// use the internal CA; other names use Public, or the internal CA when
// Public is nil. Whether a name is served at all is decided by each
// source (the CA's Allow, the ACME manager's decision function).
type Selector struct {
	Internal *CA
	Public   CertSource
}

// Source returns SourceInternal or SourceACME for a server name.
func (s *Selector) Source(name string) string {
	if s.Public == nil || IsInternalName(name) {
		return SourceInternal
	}
	return SourceACME
}

// GetCertificate implements tls.Config.GetCertificate.
func (s *Selector) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if s.Public != nil && slices.Contains(hello.SupportedProtos, ACMETLS1Protocol) {
		return s.Public.GetCertificate(hello) // a TLS-ALPN-01 challenge
	}
	if s.Source(hello.ServerName) == SourceACME {
		c, err := s.Public.GetCertificate(hello)
		if err != nil {
			return nil, fmt.Errorf("acme certificate for %q: %w", strings.ToLower(hello.ServerName), err)
		}
		return c, nil
	}
	return s.Internal.GetCertificate(hello)
}

// ServerConfig returns the edge's TLS configuration: TLS 1.2 or newer,
// HTTP/2 and HTTP/1.1 offered through ALPN (plus acme-tls/1 when acme is
// set, so TLS-ALPN-01 challenges reach the ACME source).
func ServerConfig(src CertSource, acme bool) *tls.Config {
	protos := []string{"h2", "http/1.1"}
	if acme {
		protos = append(protos, ACMETLS1Protocol)
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     protos,
		GetCertificate: src.GetCertificate,
	}
}
