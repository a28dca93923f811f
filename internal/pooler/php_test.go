package pooler

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"
)

// wpdb runs testdata/wpdb.php (mysqli as WordPress uses it) against
// socket.
func wpdb(t *testing.T, socket, user, pw, db string) map[string]any {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php not installed")
	}
	cmd := exec.Command(php, "testdata/wpdb.php")
	cmd.Env = append(os.Environ(), "DB_HOST=localhost:"+socket, "DB_USER="+user, "DB_PASSWORD="+pw, "DB_NAME="+db)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("php: %v\n%s", err, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("php output %s: %v", out, err)
	}
	return m
}

// TestPHP: PHP's mysqli connects through the pooler as WordPress does and
// sees what it would see connected directly; its login errors are
// MariaDB's.
func TestPHP(t *testing.T) {
	s := newSite(t, 2)
	other := newSite(t, 2)
	p := startPooler(t, Config{}, s.Account, other.Account)
	got := wpdb(t, p.cfg.Socket, s.User, s.Password, s.Database)
	if got["title"] != "Grüße ✓" || got["prepared"] != "Grüße ✓" || got["found_rows"] != float64(1) ||
		got["collation"] != "utf8mb4_unicode_520_ci" || got["strict"] != false || got["ping"] != true {
		t.Fatalf("through the pooler: %v", got)
	}
	direct := wpdb(t, primary.Socket(), s.User, s.Password, s.Database)
	if got["server_info"] != direct["server_info"] {
		t.Fatalf("server version %v, direct %v", got["server_info"], direct["server_info"])
	}
	for _, c := range []struct{ name, user, pw, db string }{
		{"wrong password", s.User, "nope", s.Database},
		{"other database", s.User, s.Password, other.Database},
		{"unknown database", s.User, s.Password, "wp_missing"},
	} {
		d := wpdb(t, primary.Socket(), c.user, c.pw, c.db)
		g := wpdb(t, p.cfg.Socket, c.user, c.pw, c.db)
		if len(d) == 0 || d["title"] != nil {
			t.Fatalf("%s: direct connection succeeded: %v", c.name, d)
		}
		for k, v := range d {
			if g[k] != v {
				t.Fatalf("%s: pooled %v, direct %v", c.name, g, d)
			}
		}
	}
}
