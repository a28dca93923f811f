package edgenode

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/certmetrics"
	"github.com/aipress/aipress/internal/mtls"
)

// CredentialsDir is the directory in an edge's data directory holding its
// key and certificate for shards' gateways (0700).
const CredentialsDir = "mesh-tls"

// edgeMesh is an edge's identity towards shards' gateways (edge.Mesh): the
// credentials once the edge knows its name and holds a certificate; until
// then every gateway connection fails (502) and local sites are unaffected.
type edgeMesh struct {
	creds atomic.Pointer[mtls.Credentials]
	// ready is closed once creds holds the edge's credentials with a
	// certificate.
	ready     chan struct{}
	readyOnce sync.Once
}

func newEdgeMesh() *edgeMesh { return &edgeMesh{ready: make(chan struct{})} }

// set installs creds (ready).
func (m *edgeMesh) set(creds *mtls.Credentials) {
	m.creds.Store(creds)
	m.readyOnce.Do(func() { close(m.ready) })
}

func (m *edgeMesh) ClientTLS(peer mtls.Identity, nextProtos ...string) *tls.Config {
	if c := m.creds.Load(); c != nil {
		return c.ClientTLS(peer, nextProtos...)
	}
	noCert := errors.New("this edge has no certificate for shards' gateways yet")
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: nextProtos,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return nil, noCert
		},
		InsecureSkipVerify: true, // and every server refused below
		VerifyConnection:   func(tls.ConnectionState) error { return noCert },
	}
}

// certs is the edge's mesh certificate for its metrics (none before it
// has one).
func (m *edgeMesh) certs() []certmetrics.Cert { return certmetrics.Mesh(m.creds.Load()) }

// keep learns the edge's name (its token's ID), loads its credentials from
// dir and keeps a certificate issued, until ctx ends.
func (m *edgeMesh) keep(ctx context.Context, c *apiclient.Client, dir string, log *slog.Logger) {
	var id string
	for id == "" {
		who, err := c.WhoAmI(ctx)
		if err == nil {
			id = who.ID
			break
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("asking the control plane who this edge is", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
	creds, err := mtls.LoadCredentials(dir, mtls.Identity{Role: mtls.RoleEdge, Name: id})
	if err != nil {
		log.Error("edge credentials: sites behind shards' gateways will answer 502", "err", err)
		return
	}
	issue, bundle := CertSources(c)
	if creds.Ready(time.Now()) {
		m.set(creds)
	}
	for !creds.Ready(time.Now()) {
		if err := creds.Renew(ctx, issue); err == nil {
			break
		} else if ctx.Err() != nil {
			return
		} else {
			log.Warn("getting the edge's certificate", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
	m.set(creds)
	log.Info("edge certificate for shards' gateways", "identity", creds.Self().String(), "not_after", creds.NotAfter())
	_ = creds.Keep(ctx, issue, bundle, mtls.CheckInterval, nil, log)
}

// CertSources are an edge's certificate issuer and CA bundle check
// through the control plane's API (its edge token).
func CertSources(c *apiclient.Client) (mtls.Issuer, mtls.BundleSource) {
	issue := func(ctx context.Context, csr []byte) ([]byte, []byte, error) {
		resp, err := c.EdgeCertificate(ctx, csr)
		if err != nil {
			return nil, nil, err
		}
		return []byte(resp.Certificate), []byte(resp.CA), nil
	}
	bundle := func(ctx context.Context) ([]byte, error) {
		resp, err := c.EdgeMeshCA(ctx)
		if err != nil {
			return nil, err
		}
		return []byte(resp.CA), nil
	}
	return issue, bundle
}
