package cli

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/platform/shardagent"
	"github.com/aipress/aipress/internal/platform/up"
)

// up and shard pass --db-pooler (default on) and --db-replica, and refuse
// replicas that cannot be: without the pooler, "local" beside an external
// server, HOST:PORT beside the shard's own MariaDB or from up.
func TestDBTierFlags(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	pwFile := filepath.Join(dir, "dbpw")
	for _, f := range []string{tokenFile, pwFile} {
		if err := os.WriteFile(f, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var upCfg up.Config
	var sh shardagent.Config
	d := deps{getenv: func(string) string { return "" },
		run: func(_ context.Context, c up.Config) error { upCfg = c; return nil },
		runShard: func(_ context.Context, c shardagent.Config, _ shardagent.AgentConfig) error {
			sh = c
			return nil
		}}
	upTests := []struct {
		args      []string
		direct    bool
		replica   string
		wantError string
	}{
		{nil, false, "", ""},
		{[]string{"--db-pooler=false"}, true, "", ""},
		{[]string{"--db-replica", "local"}, false, "local", ""},
		{[]string{"--db-replica", "local", "--db-pooler=false"}, false, "", "needs the pooler"},
		{[]string{"--db-replica", "10.0.0.5:3306"}, false, "", `only "local"`},
		{[]string{"--db-pooler-backends", "-1"}, false, "", "want 0"},
		{[]string{"--db-pooler-linger", "-1ms"}, false, "", "want 0 (off)"},
	}
	for _, tt := range upTests {
		upCfg = up.Config{}
		_, _, err := runCmd(t, d, append([]string{"up"}, tt.args...)...)
		if tt.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantError) {
				t.Errorf("up %v: %v, want %q", tt.args, err, tt.wantError)
			}
			continue
		}
		if err != nil || upCfg.DirectDB != tt.direct || upCfg.DBReplica != tt.replica {
			t.Errorf("up %v: %v, DirectDB %v DBReplica %q; want %v %q", tt.args, err, upCfg.DirectDB, upCfg.DBReplica, tt.direct, tt.replica)
		}
	}
	shard := []string{"shard", "--name", "s1", "--server", "http://cp:7070", "--token-file", tokenFile, "--data-dir", t.TempDir()}
	external := []string{"--db-host", "db:3306", "--db-user", "root", "--db-password-file", pwFile}
	shardTests := []struct {
		args      []string
		direct    bool
		replica   string
		wantError string
	}{
		{nil, false, "", ""},
		{[]string{"--db-pooler=false"}, true, "", ""},
		{[]string{"--db-replica", "local"}, false, "local", ""},
		{append([]string{"--db-replica", "db-replica:3306"}, external...), false, "db-replica:3306", ""},
		{append([]string{"--db-replica", "local"}, external...), false, "", "with --db-host give"},
		{[]string{"--db-replica", "db-replica:3306"}, false, "", "replica of the --db-host server"},
		{[]string{"--db-replica", "local", "--db-pooler=false"}, false, "", "needs the pooler"},
		{[]string{"--db-replica", "nonsense"}, false, "", "want"},
		{[]string{"--db-pooler-backends", "-2"}, false, "", "want 0"},
		{[]string{"--db-pooler-linger", "-5ms"}, false, "", "want 0 (off)"},
	}
	for _, tt := range shardTests {
		sh = shardagent.Config{}
		_, _, err := runCmd(t, d, append(slices.Clone(shard), tt.args...)...)
		if tt.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantError) {
				t.Errorf("shard %v: %v, want %q", tt.args, err, tt.wantError)
			}
			continue
		}
		if err != nil || sh.DirectDB != tt.direct || sh.DBReplica != tt.replica {
			t.Errorf("shard %v: %v, DirectDB %v DBReplica %q; want %v %q", tt.args, err, sh.DirectDB, sh.DBReplica, tt.direct, tt.replica)
		}
	}
	// --db-pooler-backends reaches both.
	if _, _, err := runCmd(t, d, "up", "--db-pooler-backends", "6"); err != nil || upCfg.DBPoolerBackends != 6 {
		t.Errorf("up --db-pooler-backends 6: %v, %d", err, upCfg.DBPoolerBackends)
	}
	if _, _, err := runCmd(t, d, append(slices.Clone(shard), "--db-pooler-backends", "6")...); err != nil || sh.DBPoolerBackends != 6 {
		t.Errorf("shard --db-pooler-backends 6: %v, %d", err, sh.DBPoolerBackends)
	}
	// --db-pooler-linger too: its default is the pooler's, 0 turns it off.
	for _, tt := range []struct {
		arg  string
		want time.Duration
	}{{"", -1}, {"20ms", 20 * time.Millisecond}, {"0", -1}} {
		var extra []string
		if tt.arg != "" {
			extra = []string{"--db-pooler-linger", tt.arg}
		}
		if _, _, err := runCmd(t, d, append([]string{"up"}, extra...)...); err != nil || upCfg.DBPoolerLinger != tt.want {
			t.Errorf("up --db-pooler-linger %q: %v, %v; want %v", tt.arg, err, upCfg.DBPoolerLinger, tt.want)
		}
		if _, _, err := runCmd(t, d, append(slices.Clone(shard), extra...)...); err != nil || sh.DBPoolerLinger != tt.want {
			t.Errorf("shard --db-pooler-linger %q: %v, %v; want %v", tt.arg, err, sh.DBPoolerLinger, tt.want)
		}
	}
	// The help says what the flags do.
	out, _, _ := runCmd(t, d, "shard", "--help")
	for _, want := range []string{"--db-pooler", "--db-replica", "run/pooler/mysql.sock"} {
		if !strings.Contains(out, want) {
			t.Errorf("shard --help lacks %q", want)
		}
	}
}

// up and shard pass --db-buffer-pool (default mariadb.DefaultBufferPool)
// and refuse a size MariaDB should not run with, or one for a server the
// shard does not run (--db-host).
func TestDBBufferPoolFlag(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	pwFile := filepath.Join(dir, "dbpw")
	for _, f := range []string{tokenFile, pwFile} {
		if err := os.WriteFile(f, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var got int64
	d := deps{getenv: func(string) string { return "" },
		run: func(_ context.Context, c up.Config) error { got = c.DBBufferPool; return nil },
		runShard: func(_ context.Context, c shardagent.Config, _ shardagent.AgentConfig) error {
			got = c.DBBufferPool
			return nil
		}}
	shard := []string{"shard", "--name", "s1", "--server", "http://cp:7070", "--token-file", tokenFile, "--data-dir", t.TempDir()}
	external := []string{"--db-host", "db:3306", "--db-user", "root", "--db-password-file", pwFile}
	for _, base := range [][]string{{"up"}, shard} {
		for _, tt := range []struct {
			args      []string
			want      int64
			wantError string
		}{
			{nil, mariadb.DefaultBufferPool, ""},
			{[]string{"--db-buffer-pool", "256M"}, 256 << 20, ""},
			{[]string{"--db-buffer-pool", "1G"}, 1 << 30, ""},
			{[]string{"--db-buffer-pool", "16M"}, 0, "at least 32M"},
			{[]string{"--db-buffer-pool", "lots"}, 0, "want a number"},
		} {
			got = -1
			_, _, err := runCmd(t, d, append(slices.Clone(base), tt.args...)...)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Errorf("%s %v: %v, want %q", base[0], tt.args, err, tt.wantError)
				}
				continue
			}
			if err != nil || got != tt.want {
				t.Errorf("%s %v: %v, buffer pool %d; want %d", base[0], tt.args, err, got, tt.want)
			}
		}
	}
	_, _, err := runCmd(t, d, append(append(slices.Clone(shard), external...), "--db-buffer-pool", "256M")...)
	if err == nil || !strings.Contains(err.Error(), "runs none") {
		t.Errorf("shard --db-host --db-buffer-pool: %v, want an error", err)
	}
	if _, _, err := runCmd(t, d, append(slices.Clone(shard), external...)...); err != nil {
		t.Errorf("shard --db-host: %v", err)
	}
}
