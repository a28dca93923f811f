package mtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// issuer issues through a.
func issuer(a *Authority, id Identity, ttl time.Duration) Issuer {
	return func(_ context.Context, csr []byte) ([]byte, []byte, error) {
		cert, _, err := a.Issue(csr, id, ttl)
		return cert, a.CertPEM(), err
	}
}

func creds(t *testing.T, a *Authority, id Identity) *Credentials {
	t.Helper()
	c, err := LoadCredentials(t.TempDir(), id)
	if err != nil {
		t.Fatal(err)
	}
	if a != nil {
		if err := c.Renew(context.Background(), issuer(a, id, 0)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// handshake runs a TLS handshake over loopback TCP (kernel-buffered: over
// net.Pipe, whose writes block until read, a side sending an alert while
// the other writes deadlocks) and returns both sides' errors.
func handshake(server, client *tls.Config) (serverErr, clientErr error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err, err
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		a, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		a.SetDeadline(time.Now().Add(10 * time.Second))
		s := tls.Server(a, server)
		err = s.Handshake()
		if err == nil {
			// TLS 1.3: the client learns of a refused certificate only
			// when it reads.
			_, _ = s.Write([]byte("x"))
		}
		s.Close()
		done <- err
	}()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err, err
	}
	b.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(b, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		_, clientErr = io.ReadFull(c, make([]byte, 1))
	}
	c.Close()
	return <-done, clientErr
}

func TestHandshakes(t *testing.T) {
	ca, err := NewAuthority(secret(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewAuthority(secret(2), nil)
	if err != nil {
		t.Fatal(err)
	}
	s1 := creds(t, ca, Identity{RoleShard, "s1"})
	e1 := creds(t, ca, Identity{RoleEdge, "e1"})
	s2 := creds(t, ca, Identity{RoleShard, "s2"})
	foreignEdge := creds(t, other, Identity{RoleEdge, "e1"})
	noCert := creds(t, nil, Identity{RoleEdge, "e2"})
	noCert.pool = s1.pool // it knows the CA but holds no certificate

	for _, tc := range []struct {
		name           string
		server, client *tls.Config
		ok             bool
	}{
		{"edge to the shard it expects", s1.ServerTLS(RoleEdge), e1.ClientTLS(Identity{RoleShard, "s1"}), true},
		{"edge expecting another shard", s1.ServerTLS(RoleEdge), e1.ClientTLS(Identity{RoleShard, "s2"}), false},
		{"a shard is no edge", s1.ServerTLS(RoleEdge), s2.ClientTLS(Identity{RoleShard, "s1"}), false},
		{"an edge of another CA", s1.ServerTLS(RoleEdge), foreignEdge.ClientTLS(Identity{RoleShard, "s1"}), false},
		{"a client without a certificate", s1.ServerTLS(RoleEdge), noCert.ClientTLS(Identity{RoleShard, "s1"}), false},
		{"a client that sends none", s1.ServerTLS(RoleEdge), &tls.Config{InsecureSkipVerify: true}, false},
		{"a server of another CA", foreignEdge.ServerTLS(RoleEdge), e1.ClientTLS(Identity{RoleEdge, "e1"}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serr, cerr := handshake(tc.server, tc.client)
			if tc.ok && (serr != nil || cerr != nil) {
				t.Fatalf("server %v, client %v", serr, cerr)
			}
			if !tc.ok && serr == nil && cerr == nil {
				t.Fatal("the handshake succeeded")
			}
		})
	}
}

func TestSameSecretSameCA(t *testing.T) {
	a, _ := NewAuthority(secret(7), nil)
	b, _ := NewAuthority(secret(7), nil)
	// A certificate issued by replica a installs against replica b's CA.
	c, err := LoadCredentials(t.TempDir(), Identity{RoleEdge, "e1"})
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := c.CSR()
	cert, _, err := a.Issue(csr, Identity{RoleEdge, "e1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Install(cert, b.CertPEM()); err != nil {
		t.Fatalf("a's certificate under b's CA: %v", err)
	}
	d, _ := NewAuthority(secret(8), nil)
	if err := c.Install(cert, d.CertPEM()); err == nil {
		t.Fatal("installed under another secret's CA")
	}
}

func TestInstallRefuses(t *testing.T) {
	ca, _ := NewAuthority(secret(3), nil)
	c, _ := LoadCredentials(t.TempDir(), Identity{RoleShard, "s1"})
	d, _ := LoadCredentials(t.TempDir(), Identity{RoleShard, "s1"})
	csr, _ := c.CSR()
	otherCSR, _ := d.CSR()
	wrongName, _, _ := ca.Issue(csr, Identity{RoleShard, "s9"}, 0)
	wrongRole, _, _ := ca.Issue(csr, Identity{RoleEdge, "s1"}, 0)
	otherKey, _, _ := ca.Issue(otherCSR, Identity{RoleShard, "s1"}, 0)
	for name, cert := range map[string][]byte{"another name": wrongName, "another role": wrongRole, "another key": otherKey, "garbage": []byte("x")} {
		if err := c.Install(cert, ca.CertPEM()); err == nil {
			t.Errorf("%s: installed", name)
		}
	}
	if c.Ready(time.Now()) {
		t.Fatal("ready without a certificate")
	}
}

func TestIssueRefuses(t *testing.T) {
	ca, _ := NewAuthority(secret(4), nil)
	c, _ := LoadCredentials(t.TempDir(), Identity{RoleShard, "s1"})
	csr, _ := c.CSR()
	for name, tc := range map[string]struct {
		csr []byte
		id  Identity
	}{
		"bad name":     {csr, Identity{RoleShard, "../x"}},
		"bad role":     {csr, Identity{"admin", "x"}},
		"no PEM":       {[]byte("hello"), Identity{RoleShard, "s1"}},
		"tampered CSR": {bytes.Replace(csr, []byte("A"), []byte("B"), 1), Identity{RoleShard, "s1"}},
		"oversized":    {bytes.Repeat([]byte("x"), MaxCSRBytes+1), Identity{RoleShard, "s1"}},
	} {
		if _, _, err := ca.Issue(tc.csr, tc.id, 0); err == nil {
			t.Errorf("%s: issued", name)
		}
	}
}

func TestKeepRenews(t *testing.T) {
	ca, _ := NewAuthority(secret(5), nil)
	id := Identity{RoleEdge, "e1"}
	dir := t.TempDir()
	c, _ := LoadCredentials(dir, id)
	now := time.Now()
	clock := func() time.Time { return now }
	calls := 0
	issue := func(ctx context.Context, csr []byte) ([]byte, []byte, error) {
		calls++
		if calls == 1 {
			return nil, nil, errors.New("control plane down")
		}
		return issuer(ca, id, 3*time.Hour)(ctx, csr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Keep(ctx, issue, nil, time.Millisecond, clock, nil) }()
	for !c.Ready(time.Now()) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if calls != 2 {
		t.Fatalf("issuer called %d times, want 2 (one failure, one success)", calls)
	}
	if c.NeedsRenewal(now.Add(time.Hour)) || !c.NeedsRenewal(now.Add(2*time.Hour+time.Minute)) {
		t.Fatal("renewal is due in the last third of the validity")
	}
	// A restart loads the same key and certificate.
	c2, err := LoadCredentials(dir, id)
	if err != nil || !c2.Ready(time.Now()) || !c2.key.Equal(c.key) {
		t.Fatalf("reload: %v ready=%v", err, c2.Ready(time.Now()))
	}
	// Another identity in the same directory does not take it.
	c3, err := LoadCredentials(dir, Identity{RoleEdge, "e2"})
	if err != nil || c3.Ready(time.Now()) {
		t.Fatalf("the certificate of e1 was taken by e2: %v", err)
	}
}

func TestIdentityURI(t *testing.T) {
	id := Identity{RoleShard, "s-1.x"}
	if got := id.String(); got != "aipress://shard/s-1.x" {
		t.Fatal(got)
	}
	if !strings.HasPrefix(Identity{RoleEdge, "e"}.String(), "aipress://edge/") {
		t.Fatal("edge URI")
	}
}

// A client's configuration is made once per peer, so its sessions resume
// (a full handshake costs about a millisecond of CPU); a resumed session
// still names its peer, and one of another identity is refused.
func TestSessionsResume(t *testing.T) {
	ca, _ := NewAuthority(secret(6), nil)
	s1 := creds(t, ca, Identity{RoleShard, "s1"})
	e1 := creds(t, ca, Identity{RoleEdge, "e1"})
	if e1.ClientTLS(Identity{RoleShard, "s1"}, "h") != e1.ClientTLS(Identity{RoleShard, "s1"}, "h") {
		t.Fatal("ClientTLS made a second configuration for the same peer")
	}
	addr := serveTLS(t, s1.ServerTLS(RoleEdge))
	dial := func(peer Identity) (bool, error) {
		c, err := tls.Dial("tcp", addr, e1.ClientTLS(peer))
		if err != nil {
			return false, err
		}
		defer c.Close()
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			return false, err
		}
		return c.ConnectionState().DidResume, nil
	}
	if resumed, err := dial(Identity{RoleShard, "s1"}); err != nil || resumed {
		t.Fatalf("first connection: resumed %v, %v", resumed, err)
	}
	if resumed, err := dial(Identity{RoleShard, "s1"}); err != nil || !resumed {
		t.Fatalf("second connection: resumed %v, %v; want a resumed session", resumed, err)
	}
	// The session cache is per expected peer: a client expecting s2 makes
	// a full handshake, and s1's certificate fails it.
	if _, err := dial(Identity{RoleShard, "s2"}); err == nil {
		t.Fatal("a client expecting s2 accepted s1")
	}
}

// serveTLS accepts TLS connections with server on a loopback port until the
// test ends: each that completes its handshake gets one byte ("x"). It
// returns the address.
func serveTLS(t *testing.T, server *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				s := tls.Server(c, server)
				if s.Handshake() == nil {
					s.Write([]byte("x"))
				}
				s.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// ServerTLSByProto admits the role each negotiated protocol names, and
// nobody on a protocol it does not name.
func TestServerTLSByProto(t *testing.T) {
	ca, err := NewAuthority(secret(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	s1 := creds(t, ca, Identity{RoleShard, "s1"})
	e1 := creds(t, ca, Identity{RoleEdge, "e1"})
	cp := creds(t, ca, Identity{RoleControl, "cp1"})
	server := s1.ServerTLSByProto(map[string]Role{"": RoleEdge, "fcgi": RoleEdge, "logs": RoleControl}, "fcgi", "logs", "other")
	peer := Identity{RoleShard, "s1"}
	for _, tc := range []struct {
		name   string
		client *tls.Config
		ok     bool
	}{
		{"edge, its protocol", e1.ClientTLS(peer, "fcgi"), true},
		{"edge, no protocol", e1.ClientTLS(peer), true},
		{"control plane, logs", cp.ClientTLS(peer, "logs"), true},
		{"edge, logs", e1.ClientTLS(peer, "logs"), false},
		{"control plane, fcgi", cp.ClientTLS(peer, "fcgi"), false},
		{"control plane, no protocol", cp.ClientTLS(peer), false},
		{"shard, logs", s1.ClientTLS(peer, "logs"), false},
		{"edge, a protocol admitting nobody", e1.ClientTLS(peer, "other"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serr, cerr := handshake(server, tc.client)
			if tc.ok && (serr != nil || cerr != nil) {
				t.Fatalf("server %v, client %v", serr, cerr)
			}
			if !tc.ok && serr == nil && cerr == nil {
				t.Fatal("the handshake succeeded")
			}
		})
	}
}
