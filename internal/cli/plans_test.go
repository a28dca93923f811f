package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/platform/controlplane"
	"github.com/aipress/aipress/internal/platform/up"
)

// TestPlansFlag: `up` and `server` load --plans (up also AIPRESS_PLANS and
// the config file's plans key); a bad file stops them with an error naming
// the file, the plan and the field, before anything runs.
func TestPlansFlag(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("plans.yaml", `default: solo
plans:
- {name: solo, max_sites: 1, disk_mb: 100, db_connections: 5, php: {max_children: 2, memory_limit_mb: 128, upload_max_mb: 8, idle_timeout_seconds: 10, request_timeout_seconds: 30}, backup: {every_hours: 24, keep: {daily: 3}}, bandwidth_gb: 1}
`)
	bad := write("bad.yaml", strings.Replace(string(must(os.ReadFile(good))), "db_connections: 5", "db_connections: 0", 1))
	cfgFile := write("aipress.yaml", "plans: "+good+"\n")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // the plans' names, or the error
	}{
		{"none", nil, []string{"up"}, ""},
		{"up flag", nil, []string{"up", "--plans", good}, "solo"},
		{"up env", map[string]string{EnvPlans: good}, []string{"up"}, "solo"},
		{"up config file", nil, []string{"up", "--config", cfgFile}, "solo"},
		{"up bad file", nil, []string{"up", "--plans", bad}, `--plans: ` + bad + `: plan "solo": db_connections must be between 1`},
		{"up missing file", nil, []string{"up", "--plans", filepath.Join(dir, "nope.yaml")}, "no such file"},
		{"server flag", nil, []string{"server", "--plans", good}, "solo"},
		{"server bad file", nil, []string{"server", "--plans", bad}, `plan "solo": db_connections must be between 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			ran := false
			d := deps{getenv: func(k string) string { return tt.env[k] },
				run: func(_ context.Context, c up.Config) error {
					ran = true
					if c.Plans != nil {
						got = strings.Join(c.Plans.Names(), ",")
					}
					return nil
				},
				runServer: func(_ context.Context, c controlplane.Config) error {
					ran = true
					if c.Plans != nil {
						got = strings.Join(c.Plans.Names(), ",")
					}
					return nil
				}}
			_, _, err := runCmd(t, d, tt.args...)
			if strings.Contains(tt.name, "bad") || strings.Contains(tt.name, "missing") {
				if err == nil || !strings.Contains(err.Error(), tt.want) || ran {
					t.Fatalf("err = %v (ran %v), want %q and nothing run", err, ran, tt.want)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("plans %q, err %v; want %q", got, err, tt.want)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
