package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/platform/up"
)

// TestUpStore checks --store > AIPRESS_STORE > config key store > empty
// (SQLite), and that a spec naming no store is refused before the platform
// runs.
func TestUpStore(t *testing.T) {
	const (
		fileURL = "postgres://file@db.example.com/aipress"
		envURL  = "postgresql://env@db.example.com/aipress"
		flagURL = "postgres://flag@db.example.com/aipress"
	)
	file := filepath.Join(t.TempDir(), "aipress.yaml")
	if err := os.WriteFile(file, []byte("store: "+fileURL+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{name: "default", want: ""},
		{name: "file", args: []string{"--config", file}, want: fileURL},
		{name: "env beats file", args: []string{"--config", file}, env: map[string]string{EnvStore: envURL}, want: envURL},
		{name: "flag beats env", args: []string{"--config", file, "--store", flagURL}, env: map[string]string{EnvStore: envURL}, want: flagURL},
		{name: "empty flag beats env", args: []string{"--store", ""}, env: map[string]string{EnvStore: envURL}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := "unset"
			d := deps{getenv: func(k string) string { return tt.env[k] }, run: func(_ context.Context, c up.Config) error {
				got = c.Store
				return nil
			}}
			if _, _, err := runCmd(t, d, append([]string{"up"}, tt.args...)...); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("store = %q, want %q", got, tt.want)
			}
		})
	}
	for _, args := range [][]string{{"--store", "mysql://u:hunter2@db/x"}, {"--store", "host=db password=hunter2"}} {
		d := deps{getenv: func(string) string { return "" }, run: func(context.Context, up.Config) error {
			t.Errorf("%v: platform ran with an unknown store", args)
			return nil
		}}
		_, _, err := runCmd(t, d, append([]string{"up"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "unknown store") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%v: err = %v, want unknown store without the password", args, err)
		}
	}
}
