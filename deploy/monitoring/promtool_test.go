package monitoring

import (
	"os"
	"os/exec"
	"testing"
)

// promtool returns the path of promtool. Outside make (MAKELEVEL unset) a
// missing promtool skips the test; under make test, which runs make deps
// first, it fails it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Getenv("MAKELEVEL") == "" {
		t.Skip("promtool is not installed (Debian package prometheus; make deps installs it)")
	}
	t.Fatalf("promtool is not installed although make deps ran: %v", err)
	return ""
}

func TestRules(t *testing.T) {
	bin := promtool(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"check", []string{"check", "rules", "aipress.rules.yml"}},
		{"unit", []string{"test", "rules", "aipress.rules.test.yml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), bin, tc.args...)
			cmd.Dir = "rules"
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %v: %v\n%s", tc.args, err, out)
			}
			t.Logf("%s", out)
		})
	}
}
