package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/shard"
)

// LoginKeys is a shard agent's shard.LoginKeyFunc: it asks the control
// plane for the site's login key (GET /v1/agent/sites/{name}/login-key,
// answered only for the site's own shard) and checks that it is the key of
// the site with uid (a site re-created under the same name has another).
// A control plane without sign-in links (501) gives no key: the site's
// links are then refused, and the site converges all the same.
func LoginKeys(c *apiclient.Client) shard.LoginKeyFunc {
	return func(ctx context.Context, name, uid string) (string, error) {
		k, err := c.LoginKey(ctx, name)
		var he *apiclient.Error
		if errors.As(err, &he) && he.Status == http.StatusNotImplemented {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("login key of site %s: %w", name, err)
		}
		if k.UID != uid {
			return "", fmt.Errorf("login key of site %s: the control plane's site has uid %s, not %s", name, k.UID, uid)
		}
		return hex.EncodeToString(k.Key), nil
	}
}
