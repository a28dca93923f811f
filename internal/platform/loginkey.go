package platform

import (
	"context"
	"encoding/hex"

	"github.com/aipress/aipress/internal/agent"
	"github.com/aipress/aipress/internal/shard"
)

// The login keys of sites (shard.Config.LoginKey, internal/loginlink): a
// shard agent asks the control plane over the API (a shard gets the keys
// of its own sites only); a shard inside `aipress up` derives them from the
// platform secret in the same process.

func (l *apiLink) LoginKeys() shard.LoginKeyFunc { return agent.LoginKeys(l.c) }

func (l *storeLink) LoginKeys() shard.LoginKeyFunc {
	if l.loginKey == nil {
		return nil
	}
	return func(_ context.Context, _, uid string) (string, error) {
		return hex.EncodeToString(l.loginKey(uid)), nil
	}
}
