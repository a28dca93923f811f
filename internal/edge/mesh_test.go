package edge

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/aipress/aipress/internal/mtls"
)

// testMesh is a platform CA with a shard's and an edge's credentials.
type testMesh struct {
	ca          *mtls.Authority
	shard, edge *mtls.Credentials
}

// testShardName is the shard the test gateways prove to be.
const testShardName = "s1"

func newTestMesh(t testing.TB) *testMesh {
	t.Helper()
	ca, err := mtls.NewAuthority(bytes.Repeat([]byte{9}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &testMesh{ca: ca}
	m.shard = m.creds(t, mtls.Identity{Role: mtls.RoleShard, Name: testShardName})
	m.edge = m.creds(t, mtls.Identity{Role: mtls.RoleEdge, Name: "e1"})
	return m
}

func (m *testMesh) creds(t testing.TB, id mtls.Identity) *mtls.Credentials {
	t.Helper()
	c, err := mtls.LoadCredentials(t.TempDir(), id)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Renew(context.Background(), func(_ context.Context, csr []byte) ([]byte, []byte, error) {
		cert, _, err := m.ca.Issue(csr, id, 0)
		return cert, m.ca.CertPEM(), err
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serveTLS serves h on a loopback TLS listener with the shard's
// credentials (edges only) and returns its address.
func (m *testMesh) serveTLS(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(tls.NewListener(ln, m.shard.ServerTLS(mtls.RoleEdge, ProtoHTTP)))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// startGateway runs a Gateway over static on loopback and returns its
// address.
func (m *testMesh) startGateway(t testing.TB, static *Server, log ...*slog.Logger) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := GatewayConfig{Static: static, TLS: m.shard.ServerTLS(mtls.RoleEdge)}
	if len(log) > 0 {
		cfg.Logger = log[0]
	}
	g := NewGateway(cfg)
	done := make(chan error, 1)
	go func() { done <- g.Serve(ln) }()
	t.Cleanup(func() {
		g.Shutdown(context.Background())
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("gateway: %v", err)
		}
	})
	return ln.Addr().String()
}
