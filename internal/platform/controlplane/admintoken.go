package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/store"
)

// AdminTokenFile is the file in the data directory that holds the admin
// API token (mode 0600).
const AdminTokenFile = "admin-token"

// ensureAdminToken creates the admin token on first start and (re)writes
// the client configuration next to it.
func ensureAdminToken(ctx context.Context, st store.Store, dataDir, apiURL string) error {
	path := filepath.Join(dataDir, AdminTokenFile)
	b, err := os.ReadFile(path)
	token := strings.TrimSpace(string(b))
	hash := store.TokenHash(token)
	if err != nil || token == "" {
		if token, hash, err = store.NewTokenSecret(); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	}
	if _, err := st.LookupToken(ctx, hash); errors.Is(err, store.ErrNotFound) {
		if err := st.CreateToken(ctx, store.Token{ID: "admin-" + hash[:8], Name: "admin", Role: store.RoleAdmin, Hash: hash, CreatedAt: time.Now().UTC()}); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil { // WriteFile keeps an existing file's mode
		return fmt.Errorf("admin token: %w", err)
	}
	if err := apiclient.WriteConfig(dataDir, apiURL, token); err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	return nil
}
