package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/aipress/aipress/internal/password"
	"github.com/aipress/aipress/internal/store"
	storeopen "github.com/aipress/aipress/internal/store/open"
	"github.com/aipress/aipress/internal/wordpress"
)

// AdminPasswordFile is the file in the data directory that holds the
// password of the bootstrap admin user (admin@localhost, store.
// BootstrapUserID) the platform gave it on its first start (mode 0600).
// Only the password's argon2id hash is in the store.
const AdminPasswordFile = "admin-password"

// AdminEmail is the bootstrap admin user's e-mail, its sign-in name.
const AdminEmail = "admin@localhost"

// passwordAlphabet: no look-alikes (0/O, 1/l/I), so the password can be
// typed from a screen; 24 of 56 characters ≈ 139 bits.
const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// ensureAdminPassword gives the bootstrap admin user a password when it
// has none (the first start): a random one, whose hash goes into the store
// and which is written to <dataDir>/admin-password. A user that has a
// password keeps it, so a restart changes nothing. It returns the file's
// path when the file holds the user's current password, "" otherwise (no
// bootstrap user, or its password was changed since).
func ensureAdminPassword(ctx context.Context, st store.Store, dataDir string, h *password.Hasher) (string, error) {
	path := filepath.Join(dataDir, AdminPasswordFile)
	u, err := st.GetUser(ctx, store.BootstrapUserID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("admin password: %w", err)
	}
	if u.PasswordHash != "" {
		b, err := os.ReadFile(path)
		if err == nil && password.Verify(u.PasswordHash, string(b)) == nil {
			return path, nil
		}
		return "", nil
	}
	if _, err := setAdminPassword(ctx, st, path, h, true); err != nil {
		return "", err
	}
	return path, nil
}

// setAdminPassword sets a new random password for the bootstrap admin user
// (only if it has none, with onlyIfUnset) and writes it to path. The file
// is written (beside path, then renamed) only once the store holds the
// hash: a file never names a password the store does not know.
func setAdminPassword(ctx context.Context, st store.Store, path string, h *password.Hasher, onlyIfUnset bool) (string, error) {
	pw := wordpress.RandomString(24, passwordAlphabet)
	hash, err := h.Hash(pw)
	if err != nil {
		return "", fmt.Errorf("admin password: %w", err)
	}
	tmp := path + ".tmp"
	if err := writeNewFile(tmp, []byte(pw)); err != nil {
		return "", fmt.Errorf("admin password: %w", err)
	}
	defer os.Remove(tmp)
	set := false
	_, err = st.UpdateUser(ctx, store.BootstrapUserID, func(u *store.User) error {
		if onlyIfUnset && u.PasswordHash != "" {
			return nil // another replica was first
		}
		u.PasswordHash, u.FailedLogins, u.LockedUntil, set = hash, 0, nil, true
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("admin password: %w", err)
	}
	if !set {
		return "", nil
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("admin password: %w", err)
	}
	return pw, nil
}

// writeNewFile writes data to a new file at path, mode 0600. Whatever was
// at path before (a stale file of an interrupted run, or a symlink someone
// planted there) is removed first — os.Remove does not follow a symlink —
// and O_EXCL then refuses to follow one created since: the password never
// lands in a file another user chose or keeps another file's mode.
func writeNewFile(path string, data []byte) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ResetAdminPassword gives the bootstrap admin user (admin@localhost) a new
// random password in the store named by storeSpec (SQLite in dataDir when
// empty), writes it to <dataDir>/admin-password and returns it with the
// file's path (`aipress admin reset-password`). It also clears a lock-out.
func ResetAdminPassword(ctx context.Context, storeSpec, dataDir string) (pw, path string, err error) {
	st, err := storeopen.Open(ctx, storeSpec, dataDir)
	if err != nil {
		return "", "", err
	}
	defer st.Close()
	if _, err := st.GetUser(ctx, store.BootstrapUserID); err != nil {
		return "", "", fmt.Errorf("admin password: user %s: %w", store.BootstrapUserID, err)
	}
	h, err := password.New(password.DefaultParams)
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dataDir, AdminPasswordFile)
	pw, err = setAdminPassword(ctx, st, path, h, false)
	return pw, path, err
}

// logPortal says where the portal is and how to sign in to it.
func logPortal(log *slog.Logger, apiURL, passwordFile string) {
	if passwordFile == "" {
		log.Info(fmt.Sprintf("Portal: %s/", apiURL), "portal", apiURL+"/")
		return
	}
	log.Info(fmt.Sprintf("Portal: %s/ — sign in as %s with the password in %s", apiURL, AdminEmail, passwordFile),
		"portal", apiURL+"/", "user", AdminEmail, "password_file", passwordFile)
}
