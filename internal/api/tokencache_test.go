package api

import (
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store/tokencache"
)

// TestRevokedTokenRefusedAtOnce: with the control plane's token cache in
// front of the store (a TTL far longer than the test), a token verified a
// moment ago is refused on the very next request once it is revoked or
// rotated without overlap.
func TestRevokedTokenRefusedAtOnce(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Store = tokencache.Wrap(c.Store, tokencache.Config{TTL: time.Hour, Clock: func() time.Time { return testNow }})
	})
	mk := func() (secret, id string) {
		code, m, _ := e.do(t, "POST", "/v1/tokens", adminSecret, map[string]any{"name": "ci", "role": "viewer"})
		if code != 201 {
			t.Fatalf("create token: %d %v", code, m)
		}
		return m["token"].(string), m["id"].(string)
	}
	use := func(secret string, want int) {
		t.Helper()
		if code, m, _ := e.do(t, "GET", "/v1/sites", secret, nil); code != want {
			t.Fatalf("GET /v1/sites: %d, want %d: %v", code, want, m)
		}
	}
	secret, id := mk()
	use(secret, 200)
	use(secret, 200) // now cached
	if code, m, _ := e.do(t, "DELETE", "/v1/tokens/"+id, adminSecret, nil); code != 204 {
		t.Fatalf("revoke: %d %v", code, m)
	}
	use(secret, 401)

	secret, id = mk()
	use(secret, 200)
	code, m, _ := e.do(t, "POST", "/v1/tokens/"+id+"/rotate", adminSecret, map[string]any{"overlap_seconds": -1}) // no overlap
	if code != 201 {
		t.Fatalf("rotate: %d %v", code, m)
	}
	use(secret, 401)
	use(m["token"].(string), 200)
}
