// Package tlsacme obtains publicly trusted certificates for site domains
// over ACME (Let's Encrypt by default) with github.com/caddyserver/certmagic,
// on demand: the first TLS handshake for a domain triggers issuance, but
// only when the decision function says the domain belongs to an existing
// site. Certificates and the ACME account live in a directory
// (<data-dir>/tls/acme) and are renewed by certmagic in the background.
//
// Challenges: TLS-ALPN-01 is answered in the TLS handshake (the edge's TLS
// config offers acme-tls/1), HTTP-01 by wrapping the plain-HTTP edge
// handler with HTTPChallengeHandler. Both need the CA to reach the edge on
// ports 443 and 80 respectively.
//
// This package is kept apart from internal/tlsca so that packages most
// tests import do not pull certmagic in.
package tlsacme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"slices"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// LetsEncryptProduction is the default ACME directory.
const LetsEncryptProduction = certmagic.LetsEncryptProductionCA

// LetsEncryptStaging is Let's Encrypt's staging directory (untrusted
// certificates, generous rate limits), for trying a setup out.
const LetsEncryptStaging = certmagic.LetsEncryptStagingCA

// Config configures a Manager.
type Config struct {
	// Dir is the certmagic storage directory. Required.
	Dir string
	// CA is the ACME directory URL. Default LetsEncryptProduction.
	CA string
	// Email is the ACME account's contact address (optional, recommended).
	Email string
	// Allow decides whether a certificate may be obtained for a name; it
	// must allow only domains of existing sites. Required.
	Allow func(ctx context.Context, name string) error
	// TrustedRoots, if set, are the roots trusted for the ACME server's own
	// HTTPS (a private ACME CA, tests).
	TrustedRoots *x509.CertPool
	// AltHTTPPort and AltTLSALPNPort are the ports certmagic listens on
	// itself to solve challenges when nothing else answers them (the CA
	// still connects to 80 and 443; set these when those are forwarded).
	AltHTTPPort, AltTLSALPNPort int
	Logger                      *slog.Logger
}

// Manager hands out ACME certificates during TLS handshakes.
type Manager struct {
	magic  *certmagic.Config
	issuer *certmagic.ACMEIssuer
	cache  *certmagic.Cache
}

// New returns a Manager. It does no network I/O: the account is
// registered and certificates are obtained at the first handshake for an
// allowed name.
func New(cfg Config) (*Manager, error) {
	if cfg.Dir == "" || cfg.Allow == nil {
		return nil, errors.New("tlsacme: Dir and Allow are required")
	}
	if cfg.CA == "" {
		cfg.CA = LetsEncryptProduction
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	zl := zap.New(&slogCore{log: log})
	m := &Manager{}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		Logger:           zl,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage:  &certmagic.FileStorage{Path: cfg.Dir},
		OnDemand: &certmagic.OnDemandConfig{DecisionFunc: cfg.Allow},
		Logger:   zl,
	})
	m.issuer = certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
		CA:             cfg.CA,
		Email:          cfg.Email,
		Agreed:         true,
		TrustedRoots:   cfg.TrustedRoots,
		AltHTTPPort:    cfg.AltHTTPPort,
		AltTLSALPNPort: cfg.AltTLSALPNPort,
		Logger:         zl,
	})
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

// GetCertificate implements tls.Config.GetCertificate (and answers
// TLS-ALPN-01 challenge handshakes).
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.magic.GetCertificate(hello)
}

// Leaves returns, for each of names that has a certificate in the
// manager's cache, the one with the latest expiry (the one handshakes get
// once a renewal succeeded). Certificates only in storage (not asked for
// since the process started) are not in the cache: certmagic loads them,
// and renews them if due, at their first handshake.
func (m *Manager) Leaves(names []string) map[string]*x509.Certificate {
	out := map[string]*x509.Certificate{}
	for _, n := range names {
		for _, c := range m.cache.AllMatchingCertificates(n) {
			if c.Leaf == nil {
				continue
			}
			if old, ok := out[n]; !ok || c.Leaf.NotAfter.After(old.NotAfter) {
				out[n] = c.Leaf
			}
		}
	}
	return out
}

// HTTPChallengeHandler answers HTTP-01 challenges under
// /.well-known/acme-challenge/ and passes everything else to h.
func (m *Manager) HTTPChallengeHandler(h http.Handler) http.Handler {
	return m.issuer.HTTPChallengeHandler(h)
}

// Stop stops certmagic's background maintenance (renewals).
func (m *Manager) Stop() { m.cache.Stop() }

// slogCore sends certmagic's zap logs to a slog.Logger.
type slogCore struct {
	log    *slog.Logger
	fields []zapcore.Field
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.log.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, fields: append(slices.Clip(c.fields), fs...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fs {
		f.AddTo(enc)
	}
	attrs := make([]any, 0, 2+2*len(enc.Fields))
	attrs = append(attrs, "component", "acme")
	for k, v := range enc.Fields {
		attrs = append(attrs, k, v)
	}
	c.log.Log(context.Background(), slogLevel(e.Level), e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }
