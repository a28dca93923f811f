package controlplane

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/oidclogin"
)

// AuthOptions configure how users sign in (aipress server and up flags).
type AuthOptions struct {
	// OpenSignup lets anyone create a user and an organisation
	// (POST /v1/auth/signup); OIDCSignup lets OIDC identities do so too.
	OpenSignup, OIDCSignup bool
	// OIDC relying party: the provider's issuer URL, this platform's
	// client ID, a file holding the client secret, and the callback URL
	// registered at the provider (<API URL>/v1/auth/oidc/callback).
	// Empty issuer: no OIDC sign-in.
	OIDCIssuer, OIDCClientID, OIDCClientSecretFile, OIDCRedirectURL string
	// BaseURL is where users reach the platform, for links in mails and
	// the device flow (default: the request's host).
	BaseURL string
	// MailDir receives password-reset mails as files (default
	// <data-dir>/mail); they are also logged.
	MailDir string
}

// authConfig builds the API's sign-in configuration. The OIDC flow
// cookie's key derives from the platform secret (HKDF-SHA256), so
// replicas sharing the platform secret accept each other's flows.
func authConfig(ctx context.Context, o AuthOptions, dataDir string, platformSecret []byte, log *slog.Logger) (api.AuthConfig, error) {
	mailDir := o.MailDir
	if mailDir == "" {
		mailDir = filepath.Join(dataDir, "mail")
	}
	cfg := api.AuthConfig{OpenSignup: o.OpenSignup, OIDCSignup: o.OIDCSignup, BaseURL: o.BaseURL,
		Mailer: api.LogMailer{Logger: log, Dir: mailDir}}
	if o.OIDCIssuer == "" {
		return cfg, nil
	}
	if o.OIDCClientID == "" || o.OIDCRedirectURL == "" {
		return cfg, fmt.Errorf("OIDC: --oidc-client-id and --oidc-redirect-url are required with --oidc-issuer")
	}
	var secret string
	if o.OIDCClientSecretFile != "" {
		b, err := os.ReadFile(o.OIDCClientSecretFile)
		if err != nil {
			return cfg, fmt.Errorf("OIDC client secret: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	key, err := hkdf.Key(sha256.New, platformSecret, nil, "aipress oidc flow cookie", 32)
	if err != nil {
		return cfg, fmt.Errorf("OIDC cookie key: %w", err)
	}
	p, err := oidclogin.New(ctx, oidclogin.Config{IssuerURL: o.OIDCIssuer, ClientID: o.OIDCClientID, ClientSecret: secret,
		RedirectURL: o.OIDCRedirectURL, CookieKey: key, SecureCookie: strings.HasPrefix(o.OIDCRedirectURL, "https://")})
	if err != nil {
		return cfg, err
	}
	cfg.OIDC = p
	return cfg, nil
}
