package shardagent

import (
	"github.com/aipress/aipress/internal/agent"
	"github.com/aipress/aipress/internal/shard"
)

// The login keys of sites (shard.Config.LoginKey, internal/loginlink): a
// shard agent asks the control plane over the API (a shard gets the keys
// of its own sites only; a shard inside `aipress up` derives them in
// process, package up).

func (l *apiLink) LoginKeys() shard.LoginKeyFunc { return agent.LoginKeys(l.c) }
