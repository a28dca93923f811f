package agent

import (
	"context"
	"fmt"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/shard"
)

// MoveKeys is a shard agent's shard.MoveKeyFunc: it asks the control plane
// for the key of the site's current move (GET
// /v1/agent/sites/{name}/move-key, answered only for the move's source and
// target) and checks that it is the key of the move the shard works on: a
// move that was replaced meanwhile has another key, and its export must not
// be signed or accepted with this one.
func MoveKeys(c *apiclient.Client) shard.MoveKeyFunc {
	return func(ctx context.Context, name, uid, moveID string) ([]byte, error) {
		k, err := c.MoveKey(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("move key of site %s: %w", name, err)
		}
		if k.UID != uid || k.MoveID != moveID {
			return nil, fmt.Errorf("move key of site %s: the control plane's current move is %s of uid %s, not %s of uid %s", name, k.MoveID, k.UID, moveID, uid)
		}
		return k.Key, nil
	}
}
