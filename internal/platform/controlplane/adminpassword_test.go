package controlplane

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/aipress/aipress/internal/password"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

func TestAdminPassword(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := password.New(password.Params{Memory: 64, Time: 1})
	if err != nil {
		t.Fatal(err)
	}
	hashOf := func() string {
		u, err := st.GetUser(ctx, store.BootstrapUserID)
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != AdminEmail {
			t.Fatalf("bootstrap user's e-mail %q, want %q", u.Email, AdminEmail)
		}
		return u.PasswordHash
	}
	if hashOf() != "" {
		t.Fatal("the bootstrap user has a password before the first start")
	}

	// First start: a password, its hash in the store, the file 0600.
	path, err := ensureAdminPassword(ctx, st, dir, h)
	if err != nil || path != filepath.Join(dir, AdminPasswordFile) {
		t.Fatalf("first start: %q %v", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v, want mode 0600", fi, err)
	}
	first, _ := os.ReadFile(path)
	if len(first) != 24 || password.Verify(hashOf(), string(first)) != nil {
		t.Fatalf("the file's password %q does not verify against the stored hash", first)
	}
	if err := password.CheckPolicy(string(first), AdminEmail); err != nil {
		t.Errorf("the generated password breaks the policy: %v", err)
	}

	// A restart changes nothing.
	hash := hashOf()
	if path, err := ensureAdminPassword(ctx, st, dir, h); err != nil || path == "" {
		t.Fatalf("restart: %q %v", path, err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(first) || hashOf() != hash {
		t.Fatal("a restart changed the admin password")
	}

	// Changed since (in the portal): the file is not announced, the
	// password stays.
	other, _ := h.Hash("a password the admin chose")
	if _, err := st.UpdateUser(ctx, store.BootstrapUserID, func(u *store.User) error { u.PasswordHash = other; return nil }); err != nil {
		t.Fatal(err)
	}
	if path, err := ensureAdminPassword(ctx, st, dir, h); err != nil || path != "" {
		t.Fatalf("after a change: %q %v, want no file announced", path, err)
	}
	if hashOf() != other {
		t.Fatal("a restart replaced a password the admin chose")
	}
	st.Close()

	// aipress admin reset-password: a new one, in the file and the store.
	pw, path2, err := ResetAdminPassword(ctx, "", dir)
	if err != nil || path2 != path {
		t.Fatalf("reset: %q %v", path2, err)
	}
	if got, _ := os.ReadFile(path); string(got) != pw || pw == string(first) {
		t.Fatalf("reset wrote %q, returned %q (first %q)", got, pw, first)
	}
	st, err = sqlite.Open(ctx, filepath.Join(dir, "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if password.Verify(hashOf(), pw) != nil {
		t.Fatal("the reset password does not verify against the stored hash")
	}
}

// TestAdminPasswordPlantedTmp: whatever waits at the password file's
// temporary name — a symlink to another file, a stale file with a loose
// mode — the password goes to a new 0600 file, never through the link.
func TestAdminPasswordPlantedTmp(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, tmp, victim string)
	}{
		{"symlink", func(t *testing.T, tmp, victim string) {
			if err := os.Symlink(victim, tmp); err != nil {
				t.Fatal(err)
			}
		}},
		{"dangling symlink", func(t *testing.T, tmp, victim string) {
			if err := os.Remove(victim); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, tmp); err != nil {
				t.Fatal(err)
			}
		}},
		{"stale file 0644", func(t *testing.T, tmp, _ string) {
			if err := os.WriteFile(tmp, []byte("stale"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(tmp, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			st, err := sqlite.Open(ctx, filepath.Join(dir, "aipress.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			h, err := password.New(password.Params{Memory: 64, Time: 1})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, AdminPasswordFile)
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("victim"), 0o644); err != nil {
				t.Fatal(err)
			}
			tt.plant(t, path+".tmp", victim)

			pw, err := setAdminPassword(ctx, st, path, h, false)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
				t.Fatalf("password file's mode %v, want a regular file, mode 0600", fi.Mode())
			}
			if got, _ := os.ReadFile(path); string(got) != pw {
				t.Fatalf("password file holds %q, want %q", got, pw)
			}
			if got, err := os.ReadFile(victim); err == nil && string(got) != "victim" {
				t.Fatalf("the symlink's target was written: %q", got)
			} else if err != nil && tt.name != "dangling symlink" {
				t.Fatal(err)
			} else if err == nil && tt.name == "dangling symlink" {
				t.Fatal("a file was created at the dangling symlink's target")
			}
			if _, err := os.Lstat(path + ".tmp"); !os.IsNotExist(err) {
				t.Fatalf("temporary file left behind: %v", err)
			}
		})
	}
}
