package controlplane

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/aipress/aipress/internal/platform/serve"
	"github.com/aipress/aipress/internal/store"
)

// tokenLookup finds an API token by the hash of its secret (store.Store).
type tokenLookup interface {
	LookupToken(ctx context.Context, hash string) (*store.Token, error)
}

// DebugHandler serves Go's profiles (`aipress up --debug-addr`), on its own
// mux so that nothing else registers there, to admin API tokens only: a
// heap profile holds request data and secrets in flight, cmdline the
// process's arguments, and profile and trace let a caller burn CPU. A site's
// PHP can reach any loopback port, so loopback is no boundary.
func DebugHandler(tokens tokenLookup, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return requireAdmin(tokens, log, mux)
}

// requireAdmin lets through requests that carry an admin API token as a
// bearer token: 401 without a known token, 403 for another role.
func requireAdmin(tokens tokenLookup, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := serve.BearerToken(r)
		if !ok {
			serve.Unauthorized(w, "missing bearer token (Authorization: Bearer <admin token>)")
			return
		}
		tok, err := tokens.LookupToken(r.Context(), store.TokenHash(secret))
		if errors.Is(err, store.ErrNotFound) {
			serve.Unauthorized(w, "invalid token")
			return
		}
		if err != nil {
			log.Error("debug: token lookup", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		if tok.Role != store.RoleAdmin {
			http.Error(w, "profiles need an admin token", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
