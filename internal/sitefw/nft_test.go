package sitefw

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// The dial helper: the test binary re-executed as a site user inside the
// test's network namespace (see probe).
const helperEnv = "AIPRESS_SITEFW_TEST_DIAL"

func TestMain(m *testing.M) {
	if target := os.Getenv(helperEnv); target != "" {
		fmt.Print(dial(target))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// dial connects to "tcp:ADDR" or sends a datagram to "udp:ADDR" and waits
// for its echo, and says what happened: ok, refused (a TCP reset),
// blocked (the kernel refused to send: EPERM, EACCES, unreachable),
// timeout, or an error.
func dial(target string) string {
	network, addr, _ := strings.Cut(target, ":")
	c, err := net.DialTimeout(network, addr, 3*time.Second)
	if err == nil && network == "udp" {
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err = c.Write([]byte("ping")); err == nil {
			buf := make([]byte, 4)
			_, err = io.ReadFull(c, buf)
		}
	}
	if c != nil {
		c.Close()
	}
	var ne net.Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EHOSTUNREACH):
		return "blocked"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return "error: " + err.Error()
	}
}

// testNet is a pair of network namespaces made for a test: "site", where
// the firewall, the site users' processes and this machine's services
// (listeners on loopback and on the namespace's own address) live, and
// "far", joined to it by a veth pair, which stands for the rest of the
// network: the metadata server at 169.254.169.254, a private network
// 10.99.0.0/24 (a database on :3306, DNS on :53/udp, something else on
// :8080 and :5353/udp) and a public one, 198.51.100.0/24 (:443).
type testNet struct {
	site, far string
	siteFD    int
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, nftables, processes as other users)")
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	id := randHex(4)
	n := &testNet{site: "aipfw-s-" + id, far: "aipfw-f-" + id}
	for _, ns := range []string{n.site, n.far} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", "v"+id, "netns", n.site, "type", "veth", "peer", "name", "w"+id, "netns", n.far)
	for _, a := range []string{"169.254.0.1/16", "10.99.0.1/24", "198.51.100.1/24"} {
		run(t, "ip", "-n", n.site, "addr", "add", a, "dev", "v"+id)
	}
	for _, a := range []string{"169.254.169.254/16", "10.99.0.2/24", "198.51.100.2/24"} {
		run(t, "ip", "-n", n.far, "addr", "add", a, "dev", "w"+id)
	}
	run(t, "ip", "-n", n.site, "link", "set", "v"+id, "up")
	run(t, "ip", "-n", n.far, "link", "set", "w"+id, "up")
	f, err := os.Open("/run/netns/" + n.site)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	n.siteFD = int(f.Fd())

	n.listen(t, n.site, "tcp", "127.0.0.1:8080") // the edge (allowed)
	n.listen(t, n.site, "tcp4", "0.0.0.0:7070")  // the API (and on its own addresses)
	n.listen(t, n.site, "tcp", "[::1]:7070")
	n.listen(t, n.site, "tcp", "127.0.0.1:3306") // MariaDB's TCP port
	n.listen(t, n.far, "tcp", "169.254.169.254:80")
	n.listen(t, n.far, "tcp", "10.99.0.2:3306")
	n.listen(t, n.far, "tcp", "10.99.0.2:8080")
	n.listen(t, n.far, "tcp", "198.51.100.2:443")
	n.listen(t, n.far, "udp", "10.99.0.2:53")
	n.listen(t, n.far, "udp", "10.99.0.2:5353")
	return n
}

// inNetns runs fn on an OS thread moved into namespace ns; the thread is
// thrown away afterwards (the goroutine ends locked).
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// listen serves addr in namespace ns until the test ends: TCP accepts and
// closes, UDP echoes.
func (n *testNet) listen(t *testing.T, ns, network, addr string) {
	t.Helper()
	inNetns(t, ns, func() {
		if network == "udp" {
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				t.Errorf("listen %s %s: %v", network, addr, err)
				return
			}
			t.Cleanup(func() { pc.Close() })
			go func() {
				buf := make([]byte, 64)
				for {
					k, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					_, _ = pc.WriteTo(buf[:k], from)
				}
			}()
			return
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Errorf("listen %s %s: %v", network, addr, err)
			return
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	})
}

// probe runs the dial helper as uid (its group the same number) in the
// site namespace and returns its verdict.
func (n *testNet) probe(t *testing.T, uid uint32, target string) string {
	t.Helper()
	var out []byte
	var err error
	inNetns(t, n.site, func() {
		cmd := exec.Command("/proc/self/exe", "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+target)
		if uid != 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		}
		out, err = cmd.Output()
	})
	if err != nil {
		t.Fatalf("probe %s as %d: %v", target, uid, err)
	}
	return string(out)
}

type probeCase struct {
	name   string
	uid    uint32
	target string
	ok     bool // reachable; else refused or blocked
}

func (n *testNet) check(t *testing.T, cases []probeCase) {
	t.Helper()
	for _, c := range cases {
		got := n.probe(t, c.uid, c.target)
		switch {
		case c.ok && got != "ok":
			t.Errorf("%s: uid %d → %s: %s, want ok", c.name, c.uid, c.target, got)
		case !c.ok && got != "refused" && got != "blocked":
			t.Errorf("%s: uid %d → %s: %s, want refused or blocked", c.name, c.uid, c.target, got)
		}
	}
}

func tableNames(t *testing.T, nsFD int) []string {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(nsFD))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	return names
}

func addForeignTable(t *testing.T, nsFD int, name string) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(nsFD))
	if err != nil {
		t.Fatal(err)
	}
	c.AddTable(&nftables.Table{Name: name, Family: nftables.TableFamilyINet})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}

// Site users reach the edge's port, their allowed database and DNS and the
// internet, and nothing else on the machine, the metadata address or the
// private network; root and other users reach everything; the set follows
// AddUIDs/RemoveUIDs; applying again changes nothing; Delete restores
// everything and other tables are never touched.
func TestFirewallBlocks(t *testing.T) {
	needRoot(t)
	n := newTestNet(t)
	const (
		site   = 4_200_000_001 // a site user in the set
		site2  = 4_200_000_002 // another, added later
		ranged = 4_200_000_150 // a site user by range only
		other  = 4_200_000_900 // a user the firewall does not know
	)
	addForeignTable(t, n.siteFD, "someone_else")
	fw, err := Open(Options{Table: "aipress_test_" + randHex(3), NetNS: n.siteFD})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fw.Delete(); _ = fw.Close() })

	everything := []string{"tcp:127.0.0.1:8080", "tcp:127.0.0.1:7070", "tcp:198.51.100.1:7070", "tcp:[::1]:7070",
		"tcp:127.0.0.1:3306", "tcp:169.254.169.254:80", "tcp:10.99.0.2:3306", "tcp:10.99.0.2:8080",
		"tcp:198.51.100.2:443", "udp:10.99.0.2:53", "udp:10.99.0.2:5353"}
	// Without rules a site user reaches every listener: what is refused
	// below is refused by the rules.
	var open []probeCase
	for _, target := range everything {
		open = append(open, probeCase{"no rules", site, target, true})
	}
	n.check(t, open)

	pol := Policy{
		UIDs:          []uint32{site},
		Ranges:        []IDRange{{First: 4_200_000_100, Last: 4_200_000_199}},
		LoopbackPorts: []uint16{8080},
		Allow: []Dest{{Prefix: netip.MustParsePrefix("10.99.0.2/32"), Port: 3306},
			{Prefix: netip.MustParsePrefix("10.99.0.2/32"), Port: 53}},
		DenyPrivate: true,
	}
	if err := fw.Apply(pol); err != nil {
		t.Fatal(err)
	}
	cases := []probeCase{
		{"edge port", site, "tcp:127.0.0.1:8080", true},
		{"API on loopback", site, "tcp:127.0.0.1:7070", false},
		{"API on the machine's own address", site, "tcp:198.51.100.1:7070", false},
		{"API on ::1", site, "tcp:[::1]:7070", false},
		{"MariaDB TCP", site, "tcp:127.0.0.1:3306", false},
		{"metadata", site, "tcp:169.254.169.254:80", false},
		{"allowed database", site, "tcp:10.99.0.2:3306", true},
		{"private network", site, "tcp:10.99.0.2:8080", false},
		{"internet", site, "tcp:198.51.100.2:443", true},
		{"allowed DNS", site, "udp:10.99.0.2:53", true},
		{"private UDP", site, "udp:10.99.0.2:5353", false},
		{"range: API", ranged, "tcp:127.0.0.1:7070", false},
		{"range: metadata", ranged, "tcp:169.254.169.254:80", false},
		{"range: edge port", ranged, "tcp:127.0.0.1:8080", true},
		{"root: API", 0, "tcp:127.0.0.1:7070", true},
		{"root: metadata", 0, "tcp:169.254.169.254:80", true},
		{"root: private", 0, "tcp:10.99.0.2:8080", true},
		{"other user: API", other, "tcp:127.0.0.1:7070", true},
		{"other user: metadata", other, "tcp:169.254.169.254:80", true},
		{"not yet added: API", site2, "tcp:127.0.0.1:7070", true},
	}
	n.check(t, cases)

	// Applying again replaces the table in place.
	if err := fw.Apply(pol); err != nil {
		t.Fatal(err)
	}
	names := tableNames(t, n.siteFD)
	if k := countOf(names, fw.Table()); k != 1 {
		t.Errorf("tables after a second apply: %v", names)
	}
	n.check(t, cases[:6])

	// The set follows the shard's users.
	if err := fw.AddUIDs(site2, site2); err != nil {
		t.Fatal(err)
	}
	if err := fw.RemoveUIDs(site); err != nil {
		t.Fatal(err)
	}
	if got, err := fw.UIDs(); err != nil || !slices.Equal(got, []uint32{site2}) {
		t.Errorf("UIDs = %v, %v; want [%d]", got, err, site2)
	}
	n.check(t, []probeCase{
		{"added: API", site2, "tcp:127.0.0.1:7070", false},
		{"added: edge", site2, "tcp:127.0.0.1:8080", true},
		{"removed: API", site, "tcp:127.0.0.1:7070", true},
	})
	if err := fw.SetUIDs(site, 4_200_000_003); err != nil {
		t.Fatal(err)
	}
	if got, _ := fw.UIDs(); !slices.Equal(got, []uint32{site, 4_200_000_003}) {
		t.Errorf("UIDs after SetUIDs = %v", got)
	}
	if err := fw.AddUIDs(0); err == nil {
		t.Error("AddUIDs(0) accepted root")
	}

	// Without DenyPrivate the private network is open, the metadata
	// address and this machine are not.
	pol.DenyPrivate = false
	if err := fw.Apply(pol); err != nil {
		t.Fatal(err)
	}
	n.check(t, []probeCase{
		{"private allowed", site, "tcp:10.99.0.2:8080", true},
		{"metadata still refused", site, "tcp:169.254.169.254:80", false},
		{"API still refused", site, "tcp:127.0.0.1:7070", false},
	})

	if err := fw.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := fw.Delete(); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	names = tableNames(t, n.siteFD)
	if countOf(names, fw.Table()) != 0 || countOf(names, "someone_else") != 1 {
		t.Errorf("tables after Delete: %v (want ours gone, someone_else kept)", names)
	}
	n.check(t, []probeCase{{"deleted", site, "tcp:127.0.0.1:7070", true}, {"deleted", site, "tcp:169.254.169.254:80", true}})
}

func countOf(names []string, name string) int {
	k := 0
	for _, n := range names {
		if n == name {
			k++
		}
	}
	return k
}

// A table left by a shard process that died is collected by the next
// apply; live processes', other PID namespaces', fixed-name and foreign
// tables are not.
func TestDeadProcessTablesCollected(t *testing.T) {
	needRoot(t)
	id := "aipfw-g-" + randHex(4)
	run(t, "ip", "netns", "add", id)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", id).Run() })
	f, err := os.Open("/run/netns/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())

	ns, pid := pidNamespace(), os.Getpid()
	dead := []string{
		fmt.Sprintf("aipress_0badc0de_%d_%d_%d", ns, pid, startTime(pid)+1), // our PID, another start: reused
		fmt.Sprintf("aipress_0badc0de_%d_%d_%d", ns, 1<<22+1, 12345),        // above pid_max: gone
	}
	kept := []string{
		ProcessTable("live shard"),                      // this process
		fmt.Sprintf("aipress_0badc0de_1_%d_1", 1<<22+1), // another PID namespace
		"aipress_sitefw",                                // an init step's
		"someone_else",
	}
	for _, name := range append(slices.Clone(dead), kept...) {
		addForeignTable(t, fd, name)
	}
	// Three shards start at once and all collect: each succeeds.
	var fws []*Firewall
	for i := range 3 {
		fw, err := Open(Options{Table: ProcessTable(fmt.Sprintf("collector %d", i)), NetNS: fd})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = fw.Delete(); _ = fw.Close() })
		fws = append(fws, fw)
	}
	errs := make(chan error, len(fws))
	for _, fw := range fws {
		go func() { errs <- fw.Apply(Policy{LoopbackPorts: []uint16{80}}) }()
	}
	for range fws {
		if err := <-errs; err != nil {
			t.Errorf("apply beside other collectors: %v", err)
		}
	}
	names := tableNames(t, fd)
	for _, d := range dead {
		if slices.Contains(names, d) {
			t.Errorf("dead process table %s kept", d)
		}
	}
	for _, fw := range fws {
		kept = append(kept, fw.Table())
	}
	for _, k := range kept {
		if !slices.Contains(names, k) {
			t.Errorf("table %s was removed", k)
		}
	}
}
