package egress

import (
	"context"
	"net/http"

	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// go-git (v5.19) takes the HTTP client of its smart-HTTP transport from a
// process-wide table (client.InstallProtocol) and has no per-call option
// to pass one (its options only carry a proxy, a CA bundle and TLS
// settings). So, least globally: this package installs, once, when it is
// loaded, one transport for http and https whose requests are guarded —
// dialled only to public addresses, redirects only to https — unless the
// context of the call says otherwise (WithAllowPrivate). A go-git call
// made without that context value is guarded: the default is safe.

type allowKey struct{}

// WithAllowPrivate returns ctx marked so that git fetches made with it may
// (allow true) reach loopback and private addresses over http or https.
func WithAllowPrivate(ctx context.Context, allow bool) context.Context {
	return context.WithValue(ctx, allowKey{}, allow)
}

func allowed(ctx context.Context) bool {
	v, _ := ctx.Value(allowKey{}).(bool)
	return v
}

// byContext sends a request through the open or the guarded transport as
// its context says (two transports, so that a connection dialled for one
// policy is never reused by the other).
type byContext struct{ open, guarded http.RoundTripper }

func (b byContext) RoundTrip(req *http.Request) (*http.Response, error) {
	if allowed(req.Context()) {
		return b.open.RoundTrip(req)
	}
	return b.guarded.RoundTrip(req)
}

func init() {
	c := &http.Client{
		Transport: byContext{open: Transport(true), guarded: Transport(false)},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return CheckRedirect(allowed(req.Context()))(req, via)
		},
	}
	t := githttp.NewClient(c)
	client.InstallProtocol("http", t)
	client.InstallProtocol("https", t)
}
