package platform

import (
	"net"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
)

func TestStaticURL(t *testing.T) {
	ln := &net.TCPAddr{IP: net.IPv4zero, Port: 8082}
	for _, tc := range []struct{ advertise, listen, pool, want string }{
		{"", "10.0.0.5:8082", "", "http://10.0.0.5:8082"},
		{"", ":8082", "shard-1.internal", "http://shard-1.internal:8082"},
		{"", "0.0.0.0:8082", "10.0.0.9", "http://10.0.0.9:8082"},
		{"shard-1.internal", ":8082", "", "http://shard-1.internal:8082"},
		{"shard-1.internal:80", ":8082", "", "http://shard-1.internal:80"},
		{"https://static.shard-1/", ":8082", "", "https://static.shard-1"},
		{"fd00::5", ":8082", "", "http://[fd00::5]:8082"},
	} {
		got, err := StaticURL(ln, tc.advertise, tc.listen, tc.pool)
		if err != nil || got != tc.want {
			t.Errorf("StaticURL(%q, %q, %q) = %q, %v; want %q", tc.advertise, tc.listen, tc.pool, got, err, tc.want)
		}
	}
	for _, bad := range [][3]string{{"", ":8082", ""}, {"", "0.0.0.0:8082", ""}, {"ftp://x", ":8082", ""}} {
		if got, err := StaticURL(ln, bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("StaticURL(%q) = %q, want an error", bad, got)
		}
	}
}

// The static server's routes are the sites the shard serves or imports,
// not suspended, deleted or moved-away ones.
func TestShardStaticRoutes(t *testing.T) {
	sh := shard.New(shard.Config{Name: "s1", Dir: t.TempDir()})
	st := &shardStatic{name: "s1", sh: sh}
	now := time.Now()
	mk := func(name, shardName string, fn func(*site.Site)) site.Site {
		s := site.Site{Metadata: site.Metadata{Name: name, UID: "uid-" + name}, Spec: site.Spec{Domain: name}, Status: site.Status{Shard: shardName}}
		if fn != nil {
			fn(&s)
		}
		return s
	}
	routes := st.routes([]site.Site{
		mk("a.test", "s1", nil),
		mk("suspended.test", "s1", func(s *site.Site) { s.Spec.Suspended = true }),
		mk("deleted.test", "s1", func(s *site.Site) { s.Metadata.DeletionRequested = &now }),
		mk("elsewhere.test", "s2", nil),
		mk("incoming.test", "s2", func(s *site.Site) {
			s.Move = &site.Move{Source: "s2", Target: "s1", Phase: site.MoveImporting}
		}),
		mk("gone.test", "s2", func(s *site.Site) {
			s.Move = &site.Move{Source: "s1", Target: "s2", Phase: site.MoveCleaningUp}
		}),
	})
	var hosts []string
	for _, r := range routes {
		hosts = append(hosts, r.Host)
		if r.Docroot != sh.NamesFor("uid-"+r.Site).Docroot {
			t.Errorf("%s: docroot %q", r.Host, r.Docroot)
		}
	}
	if len(hosts) != 2 || hosts[0] != "a.test" || hosts[1] != "incoming.test" {
		t.Errorf("routes for %v", hosts)
	}
}
