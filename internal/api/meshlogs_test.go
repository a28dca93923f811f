package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/logmesh"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitelog"
)

// MeshLogs reads an access log from the edges registered for it, with the
// control plane's own certificate (which no API call issues); an edge
// proving another identity than its registration's, an edge that is down,
// and an edge that stopped registering are not read.
func TestMeshLogs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ca, err := mtls.NewCA(bytes.Repeat([]byte{5}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(id mtls.Identity) *mtls.Credentials {
		c, err := mtls.LoadCredentials(t.TempDir(), id)
		if err != nil {
			t.Fatal(err)
		}
		csr, _ := c.CSR()
		cert, bundle, _, err := ca.Issue(mtls.InitialCAState(), csr, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Install(cert, bundle); err != nil {
			t.Fatal(err)
		}
		return c
	}
	st := &site.Site{Metadata: site.Metadata{Name: "blog.test", UID: "uid-blog"}}
	// edge runs a replica of edge "e1" (each replica its own key) keeping
	// one request of the site's access log at second sec.
	edge := func(path string, sec int) net.Listener {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, sitelog.AccessFile),
			[]byte(fmt.Sprintf(`{"time":"2026-12-06T10:00:%02dZ","method":"GET","path":%q,"status":200}`+"\n", sec, path)), 0o600); err != nil {
			t.Fatal(err)
		}
		creds := issue(mtls.Identity{Role: mtls.RoleEdge, Name: "e1"})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		srv := &logmesh.Server{Resolve: func(_ context.Context, name, uid, kind string) (sitelog.Source, error) {
			if name != "blog.test" || uid != "uid-blog" {
				return sitelog.Source{}, logmesh.ErrNotFound
			}
			return sitelog.Source{Dir: dir, Base: sitelog.AccessFile, Kind: kind, Site: name}, nil
		}}
		cfg := creds.ServerTLSByProto(map[string]mtls.Role{logmesh.Proto: mtls.RoleControl}, logmesh.Proto)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go srv.ServeConn(ctx, tls.Server(c, cfg))
			}
		}()
		return ln
	}
	ln := edge("/hello", 1)
	control, err := ControlCredentials(t.TempDir(), mtls.Identity{Role: mtls.RoleControl, Name: "cp1"}, ca, e.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	logs := MeshLogs{Store: e.store, Credentials: control, Clock: func() time.Time { return now }, DialTimeout: 2 * time.Second}
	read := func() ([]sitelog.Entry, error) {
		r, err := logs.Open(ctx, st, sitelog.KindAccess, sitelog.Query{}, false)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		var out []sitelog.Entry
		err = r.Run(ctx, func(e sitelog.Entry) error { out = append(out, e); return nil }, func(int) error { return nil })
		return out, err
	}

	if _, err := read(); !errors.Is(err, ErrNoLogSources) {
		t.Fatalf("no edge registered: %v", err)
	}
	if err := registerEdgeLogs(ctx, e.store, "e1", ln.Addr().String(), now); err != nil {
		t.Fatal(err)
	}
	got, err := read()
	if err != nil || len(got) != 1 || got[0].Path != "/hello" || got[0].Site != "blog.test" {
		t.Fatalf("read: %v %+v", err, got)
	}
	if want := logSourceName("e1", ln.Addr().String()) + "@"; !strings.HasPrefix(got[0].Cursor, want) {
		t.Errorf("cursor %q", got[0].Cursor)
	}
	// A bad cursor is the caller's.
	if _, err := logs.Open(ctx, st, sitelog.KindAccess, sitelog.Query{After: "e1@nope"}, false); !errors.Is(err, ErrBadCursor) {
		t.Errorf("bad after: %v", err)
	}
	// The same edge registered under another name proves e1, not e2.
	if err := registerEdgeLogs(ctx, e.store, "e2", ln.Addr().String(), now); err != nil {
		t.Fatal(err)
	}
	if _, err := read(); !errors.Is(err, ErrLogsUnreachable) {
		t.Errorf("an edge proving another identity: %v", err)
	}
	// Silent past EdgeLogsTTL: e2 is not asked; e1, re-registered, is.
	now = now.Add(EdgeLogsTTL + time.Minute)
	if err := registerEdgeLogs(ctx, e.store, "e1", ln.Addr().String(), now); err != nil {
		t.Fatal(err)
	}
	if got, err := read(); err != nil || len(got) != 1 {
		t.Errorf("after e2 went silent: %v %+v", err, got)
	}
	// Two replicas sharing e1's token: both are read, merged by time.
	ln2 := edge("/replica", 0)
	if err := registerEdgeLogs(ctx, e.store, "e1", ln2.Addr().String(), now); err != nil {
		t.Fatal(err)
	}
	if got, err := read(); err != nil || len(got) != 2 || got[0].Path != "/replica" || got[1].Path != "/hello" {
		t.Errorf("two replicas: %v %+v", err, got)
	}
	// An edge that is down.
	ln.Close()
	if _, err := read(); !errors.Is(err, ErrLogsUnreachable) {
		t.Errorf("edge down: %v", err)
	}
	// Control credentials are for a control identity only.
	if _, err := ControlCredentials(t.TempDir(), mtls.Identity{Role: mtls.RoleEdge, Name: "e1"}, ca, e.store, nil); err == nil {
		t.Error("control credentials for an edge identity")
	}
}

// An edge token chooses the address it registers and the control plane
// dials it: link-local (the metadata service), multicast and unspecified
// addresses are refused when registered and when dialed (a name resolving
// to one); one token's many addresses do not push out another edge's.
func TestEdgeLogsRegistrationBounds(t *testing.T) {
	for _, addr := range []string{"169.254.169.254:80", "[fe80::1]:7444", "0.0.0.0:7444", "[::]:7444", "224.0.0.1:7444", "[::ffff:169.254.169.254]:80"} {
		if err := checkHostPort(addr); !errors.Is(err, errForbiddenLogsAddress) {
			t.Errorf("%s: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:7444", "10.0.0.5:7444", "edge-1.example:7444"} {
		if err := checkHostPort(addr); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	// Dialing: refused before connecting (a connection attempt would
	// time out or reach the metadata service).
	dial := meshDialer(&mtls.Credentials{}, mtls.Identity{Role: mtls.RoleEdge, Name: "e1"}, "169.254.169.254:80", time.Second)
	if _, err := dial(context.Background()); !errors.Is(err, errForbiddenLogsAddress) {
		t.Errorf("dial the metadata address: %v", err)
	}

	e := newEnv(t)
	ctx := context.Background()
	now := time.Now()
	if err := registerEdgeLogs(ctx, e.store, "e2", "10.0.0.2:7444", now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := range maxEdgeLogs + 1 {
		if err := registerEdgeLogs(ctx, e.store, "e1", fmt.Sprintf("10.1.%d.%d:7444", i/250, i%250), now.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	m, _, err := loadEdgeLogs(ctx, e.store)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range m {
		if r.Edge == "e1" {
			n++
		}
	}
	if _, ok := m["e2 10.0.0.2:7444"]; !ok || n > maxEdgeLogsPerEdge {
		t.Errorf("e2 kept: %v; e1 has %d registrations", ok, n)
	}
}

// The longest merged cursor a reading of the most edges gives (edge token
// IDs, 20-digit inodes and 19-digit offsets) is an after the API accepts.
func TestLongestMergedCursorAccepted(t *testing.T) {
	var parts []string
	for i := range logmesh.MaxSources {
		name := logSourceName(fmt.Sprintf("edge-%012x", i), fmt.Sprintf("10.0.%d.1:7444", i))
		parts = append(parts, name+"@18446744073709551615:9223372036854775807")
	}
	cursor := strings.Join(parts, ",")
	if _, err := logmesh.ParseMerged(cursor); err != nil {
		t.Fatal(err)
	}
	if len(cursor) > maxLogsAfter {
		t.Errorf("a merged cursor of %d bytes; after is bounded at %d", len(cursor), maxLogsAfter)
	}
}
