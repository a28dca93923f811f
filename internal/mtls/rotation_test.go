package mtls

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Replicas sharing the platform secret derive the same key for every
// generation (so leaves one issues verify under another's CA), generation
// 1 is the CA of installs from before rotation, and generations differ in
// key and subject.
func TestGenerationsStableAcrossReplicas(t *testing.T) {
	r1, err := NewCA(secret(11), nil)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := NewCA(secret(11), nil)
	legacy, _ := NewAuthority(secret(11), nil)
	g1, _ := r1.Generation(1)
	if !g1.key.Equal(legacy.key) || g1.cert.Subject.String() != legacy.cert.Subject.String() {
		t.Fatal("generation 1 is not the CA NewAuthority derived before rotation")
	}
	seen := map[string]int{}
	for gen := 1; gen <= 3; gen++ {
		a, err := r1.Generation(gen)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := r2.Generation(gen)
		if !a.key.Equal(b.key) || a.cert.Subject.String() != b.cert.Subject.String() {
			t.Fatalf("generation %d differs between replicas", gen)
		}
		if prev, ok := seen[string(a.cert.SubjectKeyId)]; ok {
			t.Fatalf("generations %d and %d share a key", prev, gen)
		}
		seen[string(a.cert.SubjectKeyId)] = gen
		if a.Generation() != gen {
			t.Fatalf("Generation() = %d, want %d", a.Generation(), gen)
		}
	}
	st := CAState{Issuing: 2, Trusted: []int{2, 1}, Phase: PhaseSwitch}
	b1, _ := r1.Bundle(st)
	b2, _ := r2.Bundle(st)
	id1, err1 := BundleID(b1)
	id2, err2 := BundleID(b2)
	if err1 != nil || err2 != nil || id1 != id2 {
		t.Fatalf("the replicas' bundles differ: %v %v", err1, err2)
	}
	// The order counts: it says which CA issues.
	b3, _ := r1.Bundle(CAState{Issuing: 1, Trusted: []int{1, 2}, Phase: PhaseStart})
	if id3, _ := BundleID(b3); id3 == id1 {
		t.Fatal("bundles of start and switch have one ID")
	}
	// A leaf replica 1 issues under generation 2 installs against replica
	// 2's bundle of generation 2 alone, and not against generation 1's.
	c, _ := LoadCredentials(t.TempDir(), Identity{RoleEdge, "e1"})
	csr, _ := c.CSR()
	leaf, _, _, err := r1.Issue(st, csr, Identity{RoleEdge, "e1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	only2, _ := r2.Bundle(CAState{Issuing: 2, Trusted: []int{2}, Phase: PhaseFinish})
	if err := c.Install(leaf, only2); err != nil {
		t.Fatalf("generation 2's leaf under the other replica's generation 2: %v", err)
	}
	if err := c.Install(leaf, legacy.CertPEM()); err == nil {
		t.Fatal("generation 2's leaf installed under generation 1")
	}
	if _, err := NewAuthorityGen(secret(11), 0, nil); err == nil {
		t.Fatal("generation 0 derived")
	}
}

func TestAdvance(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	started := CAState{Issuing: 1, Trusted: []int{1, 2}, Phase: PhaseStart, StartedAt: t0}
	switched := CAState{Issuing: 2, Trusted: []int{2, 1}, Phase: PhaseSwitch, StartedAt: t0, SwitchedAt: t0.Add(SwitchGrace),
		OldLeavesUntil: t0.Add(SwitchGrace + DefaultTTL + stateSlack)}
	finished := CAState{Issuing: 2, Trusted: []int{2}, Phase: PhaseFinish, StartedAt: t0, SwitchedAt: switched.SwitchedAt,
		OldLeavesUntil: switched.OldLeavesUntil, FinishedAt: switched.OldLeavesUntil}
	for _, tc := range []struct {
		name    string
		from    CAState
		phase   string
		now     time.Time
		force   bool
		want    CAState
		changed bool
		err     error // nil, or the sentinel; errAny: some error
	}{
		{"start", InitialCAState(), PhaseStart, t0, false, started, true, nil},
		{"start again is a no-op", started, PhaseStart, t0.Add(time.Hour), false, started, false, nil},
		{"switch too early", started, PhaseSwitch, t0.Add(SwitchGrace - time.Second), false, started, false, ErrTooEarly},
		{"switch forced", started, PhaseSwitch, t0.Add(SwitchGrace), true, switched, true, nil},
		{"switch after the grace", started, PhaseSwitch, t0.Add(SwitchGrace), false, switched, true, nil},
		{"switch again is a no-op", switched, PhaseSwitch, t0.Add(time.Hour), false, switched, false, nil},
		{"finish while old leaves may be valid", switched, PhaseFinish, switched.OldLeavesUntil.Add(-time.Second), false, switched, false, ErrTooEarly},
		{"finish forced", switched, PhaseFinish, switched.OldLeavesUntil, true, finished, true, nil},
		{"finish when old leaves expired", switched, PhaseFinish, switched.OldLeavesUntil, false, finished, true, nil},
		{"finish again is a no-op", finished, PhaseFinish, t0.Add(30 * 24 * time.Hour), false, finished, false, nil},
		{"the next rotation", finished, PhaseStart, t0.Add(40 * 24 * time.Hour), false,
			CAState{Issuing: 2, Trusted: []int{2, 3}, Phase: PhaseStart, StartedAt: t0.Add(40 * 24 * time.Hour)}, true, nil},
		{"switch before start", InitialCAState(), PhaseSwitch, t0, true, InitialCAState(), false, ErrPhaseOrder},
		{"finish before start", InitialCAState(), PhaseFinish, t0, true, InitialCAState(), false, ErrPhaseOrder},
		{"finish before switch", started, PhaseFinish, t0.Add(30 * 24 * time.Hour), true, started, false, ErrPhaseOrder},
		{"start while switched", switched, PhaseStart, t0.Add(time.Hour), true, switched, false, ErrPhaseOrder},
		{"unknown phase", started, "rollback", t0, true, started, false, errAny},
		{"invalid state", CAState{Issuing: 0}, PhaseStart, t0, true, CAState{Issuing: 0}, false, errAny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, err := tc.from.Advance(tc.phase, tc.now, tc.force)
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("error %v", err)
			case tc.err == errAny && err == nil, tc.err != nil && tc.err != errAny && !errors.Is(err, tc.err):
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if changed != tc.changed || !equalState(got, tc.want) {
				t.Fatalf("got %+v (changed %v), want %+v (changed %v)", got, changed, tc.want, tc.changed)
			}
			if err == nil {
				if verr := got.Validate(); verr != nil {
					t.Fatalf("the new state is invalid: %v", verr)
				}
			}
		})
	}
	if p := InitialCAState().NextPhase(); p != PhaseStart {
		t.Errorf("next phase of a new install: %s", p)
	}
	if p := started.NextPhase(); p != PhaseSwitch {
		t.Errorf("next phase after start: %s", p)
	}
	if p := switched.NextPhase(); p != PhaseFinish {
		t.Errorf("next phase after switch: %s", p)
	}
	if p := finished.NextPhase(); p != PhaseStart {
		t.Errorf("next phase after finish: %s", p)
	}
}

var errAny = errors.New("any error")

func equalState(a, b CAState) bool {
	if len(a.Trusted) != len(b.Trusted) {
		return false
	}
	for i := range a.Trusted {
		if a.Trusted[i] != b.Trusted[i] {
			return false
		}
	}
	return a.Issuing == b.Issuing && a.Phase == b.Phase && a.StartedAt.Equal(b.StartedAt) && a.SwitchedAt.Equal(b.SwitchedAt) &&
		a.FinishedAt.Equal(b.FinishedAt) && a.OldLeavesUntil.Equal(b.OldLeavesUntil)
}

// caIssuer issues under ca at the state *st (guarded by mu).
func caIssuer(ca *CA, mu *sync.Mutex, st *CAState, id Identity) (Issuer, BundleSource) {
	issue := func(_ context.Context, csr []byte) ([]byte, []byte, error) {
		mu.Lock()
		s := *st
		mu.Unlock()
		cert, bundle, _, err := ca.Issue(s, csr, id, 0)
		return cert, bundle, err
	}
	bundle := func(context.Context) ([]byte, error) {
		mu.Lock()
		s := *st
		mu.Unlock()
		return ca.Bundle(s)
	}
	return issue, bundle
}

// A holder trusts every CA of its bundle: during a rotation a server with
// a leaf of the old CA and a client with one of the new CA accept each
// other; once a holder's bundle has only the new CA, a leaf of the old CA
// is refused, on a full handshake and on a resumed session alike.
func TestBundleTrust(t *testing.T) {
	ca, _ := NewCA(secret(12), nil)
	started := CAState{Issuing: 1, Trusted: []int{1, 2}, Phase: PhaseStart}
	switched := CAState{Issuing: 2, Trusted: []int{2, 1}, Phase: PhaseSwitch}
	finished := CAState{Issuing: 2, Trusted: []int{2}, Phase: PhaseFinish}
	holder := func(id Identity, st CAState) *Credentials {
		c, err := LoadCredentials(t.TempDir(), id)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		issue, _ := caIssuer(ca, &mu, &st, id)
		if err := c.Renew(t.Context(), issue); err != nil {
			t.Fatal(err)
		}
		return c
	}
	oldShard := holder(Identity{RoleShard, "s1"}, started)  // leaf of gen 1, trusts 1 and 2
	newEdge := holder(Identity{RoleEdge, "e1"}, switched)   // leaf of gen 2, trusts 2 and 1
	newShard := holder(Identity{RoleShard, "s1"}, finished) // leaf of gen 2, trusts 2 alone
	oldEdge := holder(Identity{RoleEdge, "e1"}, started)    // leaf of gen 1
	for _, tc := range []struct {
		name           string
		server, client *tls.Config
		ok             bool
	}{
		{"old server, new client", oldShard.ServerTLS(RoleEdge), newEdge.ClientTLS(Identity{RoleShard, "s1"}), true},
		{"new server, new client", newShard.ServerTLS(RoleEdge), newEdge.ClientTLS(Identity{RoleShard, "s1"}), true},
		{"finished server, old client", newShard.ServerTLS(RoleEdge), oldEdge.ClientTLS(Identity{RoleShard, "s1"}), false},
		{"finished client, old server", oldShard.ServerTLS(RoleEdge), holder(Identity{RoleEdge, "e2"}, finished).ClientTLS(Identity{RoleShard, "s1"}), false},
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

	// Resumption: an edge holding a leaf of generation 1 resumes its
	// session with a gateway; once the gateway's bundle drops generation
	// 1, the resumed session is refused too.
	t.Run("resumed session after finish", func(t *testing.T) {
		gw := holder(Identity{RoleShard, "s9"}, started)
		edge := holder(Identity{RoleEdge, "e9"}, started)
		addr := serveTLS(t, gw.ServerTLS(RoleEdge))
		dial := func() (bool, error) {
			c, err := tls.Dial("tcp", addr, edge.ClientTLS(Identity{RoleShard, "s9"}))
			if err != nil {
				return false, err
			}
			defer c.Close()
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				return false, err
			}
			return c.ConnectionState().DidResume, nil
		}
		if _, err := dial(); err != nil {
			t.Fatal(err)
		}
		if resumed, err := dial(); err != nil || !resumed {
			t.Fatalf("resumed %v, %v; want a resumed session", resumed, err)
		}
		// The gateway moves to generation 2 alone; the edge still holds
		// its session and leaf of generation 1.
		var mu sync.Mutex
		issue, _ := caIssuer(ca, &mu, &finished, gw.Self())
		if err := gw.Renew(t.Context(), issue); err != nil {
			t.Fatal(err)
		}
		if _, err := dial(); err == nil {
			t.Fatal("a leaf of the dropped CA passed on a resumed session")
		}
	})
}

// Keep renews when the control plane's bundle changes — at each phase —
// and not while it stays the same.
func TestKeepFollowsBundle(t *testing.T) {
	ca, _ := NewCA(secret(13), nil)
	id := Identity{RoleEdge, "e1"}
	var mu sync.Mutex
	st := InitialCAState()
	issue, bundleOf := caIssuer(ca, &mu, &st, id)
	var issued, checks int
	var imu sync.Mutex
	bundle := func(ctx context.Context) ([]byte, error) {
		imu.Lock()
		checks++
		imu.Unlock()
		return bundleOf(ctx)
	}
	counting := func(ctx context.Context, csr []byte) ([]byte, []byte, error) {
		imu.Lock()
		issued++
		imu.Unlock()
		return issue(ctx, csr)
	}
	c, _ := LoadCredentials(t.TempDir(), id)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Keep(ctx, counting, bundle, time.Millisecond, nil, nil) }()
	defer func() { cancel(); <-done }()
	wait := func(st CAState) {
		t.Helper()
		b, _ := ca.Bundle(st)
		want, _ := BundleID(b)
		for c.Bundle() != want {
			time.Sleep(time.Millisecond)
		}
	}
	wait(st)
	now := time.Now()
	for _, phase := range []string{PhaseStart, PhaseSwitch, PhaseFinish} {
		mu.Lock()
		next, _, err := st.Advance(phase, now, true)
		if err == nil {
			st = next
		}
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		wait(next)
		gen, _ := ca.Generation(next.Issuing)
		c.mu.RLock()
		aki := string(c.leaf.AuthorityKeyId)
		c.mu.RUnlock()
		if aki != string(gen.cert.SubjectKeyId) {
			t.Fatalf("after %s the leaf is not of generation %d", phase, next.Issuing)
		}
	}
	// Let Keep check three more times: the bundle stays, nothing more is
	// issued.
	imu.Lock()
	from := checks
	imu.Unlock()
	for {
		imu.Lock()
		n, k := issued, checks
		imu.Unlock()
		if k >= from+3 {
			if n != 4 {
				t.Fatalf("%d certificates issued, want 4 (first, start, switch, finish)", n)
			}
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// staleCache is a client session cache that hands out the last session
// put, once, whatever the key: the race in which a CA rotation's phase
// changes the bundle between the cache's lookup and the handshake's check.
type staleCache struct {
	mu    sync.Mutex
	last  *tls.ClientSessionState
	stale bool
}

func (c *staleCache) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stale && c.last != nil {
		c.stale = false
		return c.last, true
	}
	return nil, false
}

func (c *staleCache) Put(_ string, s *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s != nil && c.last == nil {
		c.last = s // the first session only
	}
}

// TestDialStaleSession: a resumed session whose server certificate is of a
// CA no longer trusted fails with ErrStaleSession, and Dial dials again
// with a full handshake, which passes.
func TestDialStaleSession(t *testing.T) {
	ca, _ := NewCA(secret(13), nil)
	started := CAState{Issuing: 1, Trusted: []int{1, 2}, Phase: PhaseStart}
	switched := CAState{Issuing: 2, Trusted: []int{2, 1}, Phase: PhaseSwitch}
	finished := CAState{Issuing: 2, Trusted: []int{2}, Phase: PhaseFinish}
	var mu sync.Mutex
	renew := func(c *Credentials, st *CAState) {
		issue, _ := caIssuer(ca, &mu, st, c.Self())
		if err := c.Renew(t.Context(), issue); err != nil {
			t.Fatal(err)
		}
	}
	gw, err := LoadCredentials(t.TempDir(), Identity{RoleShard, "s1"})
	if err != nil {
		t.Fatal(err)
	}
	edge, err := LoadCredentials(t.TempDir(), Identity{RoleEdge, "e1"})
	if err != nil {
		t.Fatal(err)
	}
	renew(gw, &started)
	renew(edge, &started)
	addr := serveTLS(t, gw.ServerTLS(RoleEdge))
	cache := &staleCache{}
	cfg := edge.ClientTLS(Identity{RoleShard, "s1"}).Clone()
	cfg.ClientSessionCache = cache
	d := &tls.Dialer{Config: cfg}
	use := func(c net.Conn, err error) error {
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = io.ReadFull(c, make([]byte, 1)) // (TLS 1.3: the ticket comes with the first read)
		return err
	}
	if err := use(d.DialContext(t.Context(), "tcp", addr)); err != nil {
		t.Fatal(err)
	}
	// The gateway issues from generation 2 and still trusts 1 (switch);
	// the edge trusts 2 alone (finish). The cached session holds the
	// gateway's leaf of generation 1, and the gateway would resume it.
	renew(gw, &switched)
	renew(edge, &finished)
	cache.mu.Lock()
	cache.stale = true
	cache.mu.Unlock()
	if err := use(d.DialContext(t.Context(), "tcp", addr)); !errors.Is(err, ErrStaleSession) {
		t.Fatalf("resuming the stale session: %v, want ErrStaleSession", err)
	}
	cache.mu.Lock()
	cache.stale = true
	cache.mu.Unlock()
	if err := use(Dial(t.Context(), d, "tcp", addr)); err != nil {
		t.Fatalf("Dial after a stale session: %v", err)
	}
}
