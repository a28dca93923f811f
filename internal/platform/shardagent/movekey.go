package shardagent

import (
	"github.com/aipress/aipress/internal/agent"
	"github.com/aipress/aipress/internal/shard"
)

// The keys of site moves (shard.Config.MoveKey): a shard agent asks the
// control plane over the API (only a move's source and target get its key;
// a shard inside `aipress up` derives it in process, package up).

func (l *apiLink) MoveKeys() shard.MoveKeyFunc { return agent.MoveKeys(l.c) }
