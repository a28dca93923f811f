package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/logmesh"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/sitelog"
)

// The gateway's logs protocol admits the control plane alone and answers
// only for the shard's own sites; edges keep FastCGI, which the control
// plane's certificate does not open.
func TestGatewayLogs(t *testing.T) {
	m := newTestMesh(t)
	control := m.creds(t, mtls.Identity{Role: mtls.RoleControl, Name: "cp1"})
	otherShard := m.creds(t, mtls.Identity{Role: mtls.RoleShard, Name: "s2"})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, sitelog.PHPFile),
		[]byte("[06-Dec-2026 10:46:23 UTC] PHP Warning:  Undefined variable $x in /srv/w.php on line 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := NewGateway(GatewayConfig{Static: New(Config{StaticServer: true}), TLS: m.shard.ServerTLSByProto(GatewayRoles()),
		Logs: &logmesh.Server{Resolve: func(_ context.Context, site, uid, kind string) (sitelog.Source, error) {
			if site != "blog.test" || uid != "u1" || kind != sitelog.KindPHP {
				return sitelog.Source{}, logmesh.ErrNotFound
			}
			return sitelog.PHPSource(site, dir), nil
		}}})
	done := make(chan error, 1)
	go func() { done <- g.Serve(ln) }()
	t.Cleanup(func() {
		g.Shutdown(context.Background())
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("gateway: %v", err)
		}
	})
	addr := ln.Addr().String()
	source := func(c *mtls.Credentials, proto string) logmesh.Source {
		return logmesh.Source{Name: testShardName, Dial: func(ctx context.Context) (net.Conn, error) {
			d := tls.Dialer{Config: c.ClientTLS(mtls.Identity{Role: mtls.RoleShard, Name: testShardName}, proto)}
			return d.DialContext(ctx, "tcp", addr)
		}}
	}
	req := logmesh.Request{Site: "blog.test", UID: "u1", Kind: sitelog.KindPHP}
	read := func(c *mtls.Credentials, req logmesh.Request) ([]sitelog.Entry, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r, err := logmesh.Open(ctx, []logmesh.Source{source(c, logmesh.Proto)}, req, false, time.Second)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		var out []sitelog.Entry
		err = r.Run(ctx, func(e sitelog.Entry) error { out = append(out, e); return nil }, func(int) error { return nil })
		return out, err
	}

	got, err := read(control, req)
	if err != nil || len(got) != 1 || got[0].Level != "warning" || got[0].Site != "blog.test" {
		t.Fatalf("the control plane's reading: %v %+v", err, got)
	}
	for name, c := range map[string]*mtls.Credentials{"an edge": m.edge, "another shard": otherShard, "the shard itself": m.shard} {
		if got, err := read(c, req); err == nil || logmesh.IsNotFound(err) || len(got) > 0 {
			t.Errorf("%s read the log: %v %+v", name, err, got)
		}
	}
	for _, other := range []logmesh.Request{
		{Site: "elsewhere.test", UID: "u2", Kind: sitelog.KindPHP}, // a site of another shard
		{Site: "blog.test", UID: "u9", Kind: sitelog.KindPHP},      // a former site of that name
		{Site: "blog.test", UID: "u1", Kind: sitelog.KindAccess},   // a shard keeps no access log
	} {
		if _, err := read(control, other); !logmesh.IsNotFound(err) {
			t.Errorf("%+v: %v, want not found", other, err)
		}
	}
	// The control plane's certificate opens no FastCGI relay.
	c, err := tls.Dial("tcp", addr, control.ClientTLS(mtls.Identity{Role: mtls.RoleShard, Name: testShardName}, ProtoFastCGI))
	if err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write([]byte("site.test\n"))
		b, _ := io.ReadAll(c)
		c.Close()
		if len(b) > 0 {
			t.Errorf("the control plane's certificate reached the FastCGI relay: %q", b)
		}
	}
}
