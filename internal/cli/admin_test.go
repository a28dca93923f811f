package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/password"
	"github.com/aipress/aipress/internal/platform/controlplane"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

func TestAdminResetPassword(t *testing.T) {
	dir := t.TempDir()
	d := deps{getenv: func(k string) string {
		if k == EnvDataDir {
			return dir
		}
		return ""
	}}
	out, _, err := runCmd(t, d, "admin", "reset-password")
	if err != nil {
		t.Fatalf("reset-password: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, controlplane.AdminPasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	pw := string(b)
	if !strings.Contains(out, "New password for admin@localhost: "+pw+"\n") {
		t.Fatalf("output %q does not show the file's password %q", out, pw)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.GetUser(ctx, store.BootstrapUserID)
	if err != nil {
		t.Fatal(err)
	}
	if password.Verify(u.PasswordHash, pw) != nil {
		t.Fatal("the printed password does not verify against the stored hash")
	}
	// --data-dir beats the environment.
	other := t.TempDir()
	if _, _, err := runCmd(t, d, "admin", "reset-password", "--data-dir", other); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(other, controlplane.AdminPasswordFile)); err != nil {
		t.Fatalf("--data-dir: %v", err)
	}
}
