package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSecretsCommands requests rotations through the real API (the fake
// shard of the backup harness leaves them Pending) and lists them.
func TestSecretsCommands(t *testing.T) {
	b := newBackupHarness(t)
	out, _, err := b.run(t, "secrets", "status")
	if err != nil || !strings.Contains(out, "No secret rotation in flight.") {
		t.Fatalf("status before: %v %q", err, out)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		out     []string
		errOut  []string
	}{
		{name: "db password", args: []string{"secrets", "rotate", "db-password", "a.com"},
			out: []string{"Kind:      secret.rotate", "Phase:     Pending", "Site:      a.com", "Shard:     local"}},
		{name: "salts need yes", args: []string{"secrets", "rotate", "salts", "a.com"}, wantErr: "logs every one of its users out; run again with --yes"},
		{name: "salts while a db password rotation is pending", args: []string{"secrets", "rotate", "salts", "a.com", "--yes"}, wantErr: "db-password rotation in flight"},
		{name: "unknown secret", args: []string{"secrets", "rotate", "api-token", "a.com"}, wantErr: `unknown secret "api-token"`},
		{name: "unknown site", args: []string{"secrets", "rotate", "db-password", "x.com"}, wantErr: "not found"},
		{name: "status", args: []string{"secrets", "status"}, out: []string{"JOB", "a.com", "db-password", "local", "Pending"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := b.run(t, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\nstdout: %s\nstderr: %s", err, out, errOut)
			}
			for _, want := range tc.out {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			for _, want := range tc.errOut {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
		})
	}
	out, _, err = b.run(t, "secrets", "status", "-o", "json")
	var st struct {
		Rotations []struct {
			Site   string
			Params struct{ Kind string }
		}
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || len(st.Rotations) != 1 || st.Rotations[0].Site != "a.com" || st.Rotations[0].Params.Kind != "db-password" {
		t.Fatalf("status json: %v %s", err, out)
	}
}
