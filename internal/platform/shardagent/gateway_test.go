package shardagent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/logmesh"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitelog"
)

func TestGatewayAdvertise(t *testing.T) {
	ln := &net.TCPAddr{IP: net.IPv4zero, Port: 8443}
	for _, tc := range []struct{ advertise, listen, want string }{
		{"", "10.0.0.5:8443", "10.0.0.5:8443"},
		{"shard-1.internal", ":8443", "shard-1.internal:8443"},
		{"shard-1.internal:443", ":8443", "shard-1.internal:443"},
		{"fd00::5", ":8443", "[fd00::5]:8443"},
		{"10.1.2.3", "0.0.0.0:8443", "10.1.2.3:8443"},
	} {
		got, err := GatewayAdvertise(ln, tc.advertise, tc.listen)
		if err != nil || got != tc.want {
			t.Errorf("GatewayAdvertise(%q, %q) = %q, %v; want %q", tc.advertise, tc.listen, got, err, tc.want)
		}
	}
	for _, bad := range [][2]string{{"", ":8443"}, {"", "0.0.0.0:8443"}, {"https://x", ":8443"}, {"a/b", ":8443"}} {
		if got, err := GatewayAdvertise(ln, bad[0], bad[1]); err == nil {
			t.Errorf("GatewayAdvertise(%q) = %q, want an error", bad, got)
		}
	}
}

// The gateway's routes are the sites the shard serves or imports, not
// suspended, deleted or moved-away ones, each with its docroot and socket.
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
		if n := sh.NamesFor("uid-" + r.Site); r.Docroot != n.Docroot || r.Endpoint != "unix:"+n.Socket {
			t.Errorf("%s: docroot %q endpoint %q", r.Host, r.Docroot, r.Endpoint)
		}
	}
	if len(hosts) != 2 || hosts[0] != "a.test" || hosts[1] != "incoming.test" {
		t.Errorf("routes for %v", hosts)
	}
}

// The gateway's PHP logs are its own sites' alone, by name and UID, from
// the shard's layout.
func TestShardStaticPHPLog(t *testing.T) {
	sh := shard.New(shard.Config{Name: "s1", Dir: t.TempDir()})
	st := &shardStatic{name: "s1", sh: sh, srv: edge.New(edge.Config{StaticServer: true}), log: slog.New(slog.DiscardHandler)}
	mk := func(name, shardName string) site.Site {
		return site.Site{Metadata: site.Metadata{Name: name, UID: "uid-" + name}, Spec: site.Spec{Domain: name}, Status: site.Status{Shard: shardName}}
	}
	incoming := mk("incoming.test", "s2")
	incoming.Move = &site.Move{Source: "s2", Target: "s1", Phase: site.MoveImporting}
	st.update([]site.Site{mk("a.test", "s1"), mk("elsewhere.test", "s2"), incoming})
	src, err := st.phpLog(context.Background(), "a.test", "uid-a.test", sitelog.KindPHP)
	if err != nil || src.Dir != sh.NamesFor("uid-a.test").LogsDir() || src.Site != "a.test" || src.Kind != sitelog.KindPHP {
		t.Fatalf("own site: %+v %v", src, err)
	}
	for _, q := range [][3]string{
		{"elsewhere.test", "uid-elsewhere.test", sitelog.KindPHP},
		{"incoming.test", "uid-incoming.test", sitelog.KindPHP},
		{"a.test", "uid-other", sitelog.KindPHP},
		{"a.test", "uid-a.test", sitelog.KindAccess},
		{"nobody.test", "uid-nobody.test", sitelog.KindPHP},
	} {
		if _, err := st.phpLog(context.Background(), q[0], q[1], q[2]); !errors.Is(err, logmesh.ErrNotFound) {
			t.Errorf("%v: %v, want not found", q, err)
		}
	}
}
