package shard

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/phpfpm"
	"github.com/aipress/aipress/internal/site"
)

// freeRange finds n consecutive ports nothing listens on.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for base := 20000 + os.Getpid()%20000; base < 65000; base += n {
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// Ports are stable per pool, never shared, kept across restarts (a new
// allocator on the same file), freed on release and reused after.
func TestPortsStableUniqueFreed(t *testing.T) {
	dir := t.TempDir()
	first := freeRange(t, 60)
	newPorts := func() *ports {
		return &ports{path: portsPath(dir), first: first, last: first + 59, probeHost: "127.0.0.1"}
	}
	p := newPorts()
	got := map[int]string{}
	for i := range 55 {
		pool := fmt.Sprintf("wp_%012d", i)
		port, err := p.port(pool)
		if err != nil {
			t.Fatal(err)
		}
		if other, dup := got[port]; dup {
			t.Fatalf("port %d given to %s and %s", port, other, pool)
		}
		if port < first || port > first+59 {
			t.Fatalf("port %d outside %d-%d", port, first, first+59)
		}
		got[port] = pool
		if again, _ := p.port(pool); again != port {
			t.Fatalf("%s: %d then %d", pool, port, again)
		}
	}
	// A restart reads the same allocation.
	p2 := newPorts()
	for port, pool := range got {
		if again, err := p2.port(pool); err != nil || again != port {
			t.Fatalf("after restart %s: %d (%v), want %d", pool, again, err, port)
		}
	}
	// Release frees the port; the next new pool takes it.
	victim := "wp_000000000007"
	vport, _ := p2.lookup(victim)
	if err := p2.release(victim); err != nil {
		t.Fatal(err)
	}
	if _, ok := newPorts().lookup(victim); ok {
		t.Fatal("released port still in the file")
	}
	if port, _ := p2.port("wp_newcomer00"); port != vport {
		t.Errorf("newcomer got %d, want the freed %d", port, vport)
	}
	if err := p2.release("wp_never"); err != nil {
		t.Errorf("releasing an unknown pool: %v", err)
	}
	pools, _ := p2.pools()
	if len(pools) != 55 || !slices.Contains(pools, "wp_newcomer00") || slices.Contains(pools, victim) {
		t.Errorf("pools = %d %v", len(pools), pools)
	}
}

// A port something else listens on is skipped; a full range is an error.
func TestPortsSkipBusyAndExhaust(t *testing.T) {
	first := freeRange(t, 3)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(first))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := &ports{path: filepath.Join(t.TempDir(), portsFile), first: first, last: first + 2, probeHost: "127.0.0.1"}
	a, err := p.port("a")
	if err != nil || a != first+1 {
		t.Fatalf("a = %d %v, want %d (first is busy)", a, err, first+1)
	}
	if b, err := p.port("b"); err != nil || b != first+2 {
		t.Fatalf("b = %d %v", b, err)
	}
	if c, err := p.port("c"); err == nil || !strings.Contains(err.Error(), "no free port") {
		t.Fatalf("c = %d %v, want no free port", c, err)
	}
	// A narrower range after a restart moves a pool that fell outside.
	p2 := &ports{path: p.path, first: first + 1, last: first + 1, probeHost: ""}
	if got, err := p2.port("a"); err != nil || got != first+1 {
		t.Fatalf("a in narrowed range = %d %v", got, err)
	}
}

func TestParseClients(t *testing.T) {
	c, err := ParseClients(nil)
	if err != nil || !slices.Equal(c, DefaultClients) {
		t.Fatalf("default = %v %v", c, err)
	}
	c, err = ParseClients([]string{"10.0.0.5", " 10.1.2.0/30", "fd00::1", "10.0.0.5"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.5", "10.1.2.0", "10.1.2.1", "10.1.2.2", "10.1.2.3", "fd00::1"}
	if got := c.Addresses(); !slices.Equal(got, want) {
		t.Errorf("addresses = %v, want %v", got, want)
	}
	for addr, ok := range map[string]bool{"10.0.0.5": true, "10.1.2.3": true, "10.1.2.4": false, "::ffff:10.0.0.5": true, "127.0.0.1": false} {
		if got := c.Allows(netip.MustParseAddr(addr)); got != ok {
			t.Errorf("Allows(%s) = %v", addr, got)
		}
	}
	if got := len(mustClients(t, "192.168.7.0/24").Addresses()); got != 256 {
		t.Errorf("/24 = %d addresses", got)
	}
	for _, bad := range []string{"10.0.0.0/16", "0.0.0.0/0", "10.0.0.300", "fd00::/64"} {
		if _, err := ParseClients([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// "any" alone allows every address and writes no php-fpm list.
	if _, err := ParseClients([]string{"any", "10.0.0.5"}); err == nil {
		t.Error("any with an address accepted")
	}
	c = mustClients(t, "any")
	if !c.Any() || c.Addresses() != nil {
		t.Errorf("any = %v, addresses %v", c, c.Addresses())
	}
	for _, addr := range []string{"10.244.3.7", "::ffff:192.168.1.1", "fd00::9"} {
		if !c.Allows(netip.MustParseAddr(addr)) {
			t.Errorf("any does not allow %s", addr)
		}
	}
	if DefaultClients.Any() || mustClients(t, "10.0.0.5").Any() {
		t.Error("a list of addresses counts as any")
	}
}

func mustClients(t *testing.T, s ...string) Clients {
	c, err := ParseClients(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// With PoolListen the pool gets a TCP listen address from the range and
// the allowed clients, the endpoint names the advertised host, and the
// settings are checked.
func TestTCPPoolConfig(t *testing.T) {
	dir := t.TempDir()
	first := freeRange(t, 2)
	s := New(Config{Name: "s1", Dir: dir, PoolListen: "127.0.0.1", PoolAdvertise: "shard-1.internal",
		PoolPortFirst: first, PoolPortLast: first + 1, AllowedClients: mustClients(t, "10.0.0.7", "127.0.0.1")})
	if err := s.checkListen(); err != nil {
		t.Fatal(err)
	}
	st := &site.Site{Metadata: site.Metadata{Name: "a.test", UID: "uid-a"}}
	n := s.NamesFor(st.Metadata.UID)
	pool, err := s.poolFor(st, n, -1)
	if err != nil {
		t.Fatal(err)
	}
	if pool.Listen != "127.0.0.1:"+strconv.Itoa(first) || !slices.Equal(pool.AllowedClients, []string{"10.0.0.7", "127.0.0.1"}) {
		t.Errorf("pool = %+v", pool)
	}
	conf, err := phpfpm.RenderPool(pool, "/unused")
	if err != nil || !strings.Contains(string(conf), "listen.allowed_clients = 10.0.0.7,127.0.0.1\n") {
		t.Errorf("rendered: %v\n%s", err, conf)
	}
	if ep, err := s.endpoint(n); err != nil || ep != "tcp:shard-1.internal:"+strconv.Itoa(first) {
		t.Errorf("endpoint = %q %v", ep, err)
	}
	// Unix sockets by default.
	u := New(Config{Name: "s2", Dir: dir})
	if pool, _ := u.poolFor(st, u.NamesFor("uid-a"), -1); pool.Listen != "" {
		t.Errorf("default pool listens on %q", pool.Listen)
	}
	if ep, _ := u.endpoint(u.NamesFor("uid-a")); !strings.HasPrefix(ep, "unix:/") {
		t.Errorf("default endpoint %q", ep)
	}
	for _, bad := range []Config{
		{PoolListen: "0.0.0.0"},                           // wildcard without advertise
		{PoolListen: "shard.example", PoolAdvertise: "x"}, // not an IP
		{PoolListen: "127.0.0.1", PoolPortFirst: 9200, PoolPortLast: 9100},
		{PoolListen: "127.0.0.1", PoolAdvertise: "http://x/"},
	} {
		bad.Name, bad.Dir = "b", dir
		if err := New(bad).checkListen(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if err := New(Config{Name: "w", Dir: dir, PoolListen: "0.0.0.0", PoolAdvertise: "10.0.0.9"}).checkListen(); err != nil {
		t.Errorf("wildcard with advertise: %v", err)
	}
}
