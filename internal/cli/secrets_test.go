package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/edge/purge"
	"github.com/aipress/aipress/internal/platform/edgenode"
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

// TestSecretsPurgeCommands rotates the purge secret of a data directory
// with the CLI: the previous secret is kept beside the new one until
// --finish, status says so, and misuse is refused.
func TestSecretsPurgeCommands(t *testing.T) {
	b := newBackupHarness(t)
	dir := t.TempDir()
	path := filepath.Join(dir, edgenode.PurgeSecretFile)
	if _, _, err := b.run(t, "secrets", "rotate", "purge-secret", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "no purge secret at") {
		t.Fatalf("rotate without a secret: %v", err)
	}
	first, err := purge.LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := b.run(t, "secrets", "rotate", "purge-secret", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "rotated") {
		t.Fatalf("rotate: %v %s", err, out)
	}
	cur, _ := os.ReadFile(path)
	prev, _ := os.ReadFile(path + purge.PrevSuffix)
	if bytes.Equal(cur, first) || !bytes.Equal(prev, first) {
		t.Fatal("the secret was not rotated with the previous one kept")
	}
	if _, _, err := b.run(t, "secrets", "rotate", "purge-secret", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "finish it first") {
		t.Errorf("second rotate during the overlap: %v", err)
	}
	out, _, err = b.run(t, "secrets", "status", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "rotation in flight since") {
		t.Errorf("status: %v %s", err, out)
	}
	out, _, err = b.run(t, "secrets", "rotate", "purge-secret", "--data-dir", dir, "--finish", "-o", "json")
	if err != nil || !strings.Contains(out, `"in_flight": false`) {
		t.Fatalf("finish: %v %s", err, out)
	}
	if _, err := os.Stat(path + purge.PrevSuffix); !os.IsNotExist(err) {
		t.Error("the previous secret survived --finish")
	}
	for _, args := range [][]string{
		{"secrets", "rotate", "purge-secret", "a.com"},
		{"secrets", "rotate", "db-password", "a.com", "--finish"},
		{"secrets", "rotate", "db-password"},
	} {
		if _, _, err := b.run(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestSecretsKEKCommand rotates the backup key of a data directory with
// the CLI: a snapshot taken before reads with the new key, the old key
// opens nothing, and the platform secret (CA, move keys) keeps the old
// key's bytes.
func TestSecretsKEKCommand(t *testing.T) {
	b := newBackupHarness(t)
	ctx := t.Context()
	dir := t.TempDir()
	kekPath := filepath.Join(dir, repos.KEKFile)
	oldKEK, err := repos.LoadKEK(kekPath)
	if err != nil {
		t.Fatal(err)
	}
	base := repos.DefaultBaseURL(dir)
	u, _ := repos.RepoURL(base, "local")
	if err := os.MkdirAll(filepath.Join(dir, "backups", "local"), 0o700); err != nil {
		t.Fatal(err)
	}
	r, err := repo.OpenURL(ctx, u, oldKEK, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	out, _, err := b.run(t, "secrets", "rotate", "backup-kek", "--data-dir", dir, "-o", "json")
	if err != nil || !strings.Contains(out, `"finished": true`) || !strings.Contains(out, `"local"`) {
		t.Fatalf("rotate: %v %s", err, out)
	}
	newKEK, _ := os.ReadFile(kekPath)
	if bytes.Equal(newKEK, oldKEK) {
		t.Fatal("the KEK did not change")
	}
	if _, err := repo.OpenURL(ctx, u, oldKEK, false, nil); !errors.Is(err, repo.ErrWrongKey) {
		t.Errorf("the old KEK still opens the repository: %v", err)
	}
	if r, err := repo.OpenURL(ctx, u, newKEK, false, nil); err != nil {
		t.Errorf("the new KEK does not open the repository: %v", err)
	} else {
		r.Close()
	}
	if secret, _ := os.ReadFile(filepath.Join(dir, repos.PlatformSecretFile)); !bytes.Equal(secret, oldKEK) {
		t.Error("the platform secret is not the old KEK's bytes")
	}
	if _, _, err := b.run(t, "secrets", "rotate", "backup-kek", "--data-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no backup key at") {
		t.Errorf("rotate without a key: %v", err)
	}
}

// TestSecretsCACommands rotates the mesh CA through the real API with the
// CLI: each run does the next phase and says what to wait for, a phase too
// early is refused with the time to wait for, a retried phase changes
// nothing, and status shows the state.
func TestSecretsCACommands(t *testing.T) {
	b := newBackupHarness(t)
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		out     []string
	}{
		{name: "status before", args: []string{"secrets", "status"}, out: []string{"Mesh CA: generation 1, never rotated."}},
		{name: "bad phase", args: []string{"secrets", "rotate", "ca", "--phase", "rollback"}, wantErr: "--phase must be start, switch or finish"},
		{name: "a domain", args: []string{"secrets", "rotate", "ca", "a.com"}, wantErr: "ca takes no DOMAIN"},
		{name: "phase for another secret", args: []string{"secrets", "rotate", "db-password", "a.com", "--phase", "start"}, wantErr: "--phase and --force are for ca"},
		{name: "finish first", args: []string{"secrets", "rotate", "ca", "--phase", "finish"}, wantErr: "start one first"},
		{name: "start (next phase)", args: []string{"secrets", "rotate", "ca"},
			out: []string{"rotation to generation 2 started", "generation 1 still issues", "Next: 'aipress secrets rotate ca' (switch) after"}},
		{name: "start again", args: []string{"secrets", "rotate", "ca", "--phase", "start"}, out: []string{"start was done already"}},
		{name: "switch too early", args: []string{"secrets", "rotate", "ca"}, wantErr: "switch after"},
		{name: "switch forced", args: []string{"secrets", "rotate", "ca", "--force"},
			out: []string{"generation 2 issues since", "generation 1 is still trusted", "(finish) after"}},
		{name: "status during", args: []string{"secrets", "status"}, out: []string{"No secret rotation in flight.", "generation 2 issues since"}},
		{name: "finish too early", args: []string{"secrets", "rotate", "ca"}, wantErr: "may be valid until"},
		{name: "finish forced", args: []string{"secrets", "rotate", "ca", "--phase", "finish", "--force"},
			out: []string{"generation 2 alone"}},
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
		})
	}
	out, _, err := b.run(t, "secrets", "status", "-o", "json")
	var st struct {
		MeshCA struct {
			Issuing int    `json:"issuing"`
			Trusted []int  `json:"trusted"`
			Phase   string `json:"phase"`
		} `json:"mesh_ca"`
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.MeshCA.Issuing != 2 || len(st.MeshCA.Trusted) != 1 || st.MeshCA.Phase != "finish" {
		t.Fatalf("status json: %v %s", err, out)
	}
}
