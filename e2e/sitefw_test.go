package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
)

// A site's PHP cannot connect to this machine's services — the API, pprof,
// MariaDB's TCP port — and still reaches its edge; the same connections made by root (this test) succeed, so the
// shard's rules refuse them, not a closed port. Stopping the platform
// removes its rules.
func TestSiteFirewall(t *testing.T) {
	p := newPlatform(t)
	debug := freeAddr(t)
	p.extraArgs = []string{"--debug-addr", debug, "--site-firewall", "on"}
	p.start()
	if !p.waitLog(0, "site firewall applied") {
		t.Fatalf("no \"site firewall applied\" in the log:\n%s", p.log)
	}
	c := p.createSite("fw.localhost", "Firewall")
	if c.Status != "Ready" {
		t.Fatalf("site not ready: %+v", c)
	}
	port, err := os.ReadFile(filepath.Join(p.dataDir, "shards", "local", "mariadb", "port"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]string{
		"edge": p.httpAddr, "api": p.apiAddr, "pprof": debug,
		"mariadb": "127.0.0.1:" + strings.TrimSpace(string(port)),
	}
	for name, addr := range targets {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("root cannot reach %s at %s: %v", name, addr, err)
		}
		conn.Close()
	}
	// (The metadata address is checked in internal/sitefw, against a
	// listener in a network namespace of the test's own: from here a
	// failure would send packets to the host's real network.)

	var php strings.Builder
	php.WriteString("<?php\nheader('Content-Type: application/json');\n$r = [];\n")
	for name, addr := range targets {
		host, port, _ := net.SplitHostPort(addr)
		php.WriteString("$s = @fsockopen('" + host + "', " + port + ", $errno, $errstr, 3);\n")
		php.WriteString("$r['" + name + "'] = $s ? 'ok' : $errno . ' ' . $errstr;\n")
	}
	php.WriteString("echo json_encode($r);\n")
	path := plant(t, p.docroot("fw.localhost"), "aip-firewall-probe.php", php.String())
	code, body := p.client("fw.localhost").get(path)
	if code != 200 {
		t.Fatalf("probe: %d %s", code, body)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("probe answer %q: %v", body, err)
	}
	for name := range targets {
		want := "111 Connection refused" // the rules' TCP reset
		if name == "edge" {
			want = "ok"
		}
		if got[name] != want {
			t.Errorf("site PHP → %s (%s): %q, want %q", name, targets[name], got[name], want)
		}
	}

	// The table is the shard process's and goes with it.
	h := sha256.Sum256([]byte(filepath.Join(p.dataDir, "shards", "local")))
	prefix := "aipress_" + hex.EncodeToString(h[:4]) + "_"
	if n := countTables(t, prefix); n != 1 {
		t.Errorf("%d tables %s* while running, want 1", n, prefix)
	}
	p.stop()
	if n := countTables(t, prefix); n != 0 {
		t.Errorf("%d tables %s* after the platform stopped, want 0", n, prefix)
	}
}

func countTables(t *testing.T, prefix string) int {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tb := range tables {
		if strings.HasPrefix(tb.Name, prefix) {
			n++
		}
	}
	return n
}
