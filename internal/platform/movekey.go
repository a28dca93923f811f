package platform

import (
	"context"
	"errors"

	"github.com/aipress/aipress/internal/agent"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/shard"
)

// The keys of site moves (shard.Config.MoveKey): a shard agent asks the
// control plane over the API (only a move's source and target get its key);
// a shard inside `aipress up` derives it from the control plane's
// key-encryption key in the same process.

func (l *apiLink) MoveKeys() shard.MoveKeyFunc { return agent.MoveKeys(l.c) }

func (l *storeLink) MoveKeys() shard.MoveKeyFunc { return managerMoveKeys(l.repos) }

// managerMoveKeys derives move keys with m's key-encryption key.
func managerMoveKeys(m *repos.Manager) shard.MoveKeyFunc {
	return func(_ context.Context, _, uid, moveID string) ([]byte, error) {
		if m == nil {
			return nil, errors.New("move keys are not configured (no key-encryption key)")
		}
		return m.MoveKey(uid, moveID), nil
	}
}
