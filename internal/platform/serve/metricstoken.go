package serve

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// MetricsTokenFile is the file in a role's data directory that holds the
// bearer token of its metrics (`aipress edge --metrics`, `aipress shard
// --health-addr`), unless --metrics-token-file names another: "aip_" and
// 48 hex digits, mode 0600, made on the first start and kept. Prometheus
// sends it from the same file (scrape config `authorization:
// {credentials_file: …}`, or `bearer_token_file` in older configs).
const MetricsTokenFile = "metrics-token"

// MetricsHandler serves metrics at GET /metrics to requests with the bearer
// token in tokenFile (LoadOrCreateToken); what names the file in the 401
// answer.
func MetricsHandler(metrics http.Handler, tokenFile, what string, log *slog.Logger) (http.Handler, error) {
	token, err := LoadOrCreateToken(tokenFile, log)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	return BearerOnly(token, what, mux), nil
}

// newTokenSecret is a new metrics token: "aip_" and 48 hex digits (the
// API tokens' form, store.NewTokenSecret).
func newTokenSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("metrics token: %w", err)
	}
	return "aip_" + hex.EncodeToString(b), nil
}

// minMetricsToken is the shortest token accepted from a file the operator
// provides.
const minMetricsToken = 16

// LoadOrCreateToken returns the token in path (surrounding white space
// trimmed), creating one when the file does not exist: written aside and
// linked into place, so a crash leaves no file or a whole one, and two
// starts racing agree on one token.
func LoadOrCreateToken(path string, log *slog.Logger) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		secret, err := newTokenSecret()
		if err != nil {
			return "", err
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), ".metrics-token-*")
		if err != nil {
			return "", fmt.Errorf("metrics token: %w", err)
		}
		defer os.Remove(tmp.Name())
		_, err = tmp.WriteString(secret + "\n")
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("metrics token: %w", err)
		}
		if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
			return LoadOrCreateToken(path, log) // created concurrently
		} else if err != nil {
			return "", fmt.Errorf("metrics token: %w", err)
		}
		return secret, nil
	}
	if err != nil {
		return "", fmt.Errorf("metrics token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < minMetricsToken || strings.ContainsAny(token, " \t\r\n") {
		return "", fmt.Errorf("metrics token %s: want one word of at least %d characters", path, minMetricsToken)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		// A mounted secret may be read-only; say so rather than fail.
		log.Warn("the metrics token file is readable by others than its owner", "file", path, "mode", fi.Mode().Perm().String())
	}
	return token, nil
}

// BearerOnly serves next to requests whose Authorization header is
// "Bearer <token>", and 401 to the others. The comparison takes the same
// time whatever the header holds.
func BearerOnly(token, tokenFile string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, _ := BearerToken(r)
		got := sha256.Sum256([]byte(secret))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			Unauthorized(w, "missing or wrong bearer token ("+tokenFile+")")
			return
		}
		next.ServeHTTP(w, r)
	})
}
