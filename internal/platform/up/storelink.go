package up

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"gocloud.dev/blob"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/platform/shardagent"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

var _ shardagent.Link = (*storeLink)(nil)

// storeLink is the shardagent.Link of a shard inside `aipress up`: the
// store is in the same process.
type storeLink struct {
	st    store.Store
	repos *repos.Manager
	// loginKey derives sites' login keys (nil: no sign-in links).
	loginKey func(uid string) []byte
	// uploads is the control plane's bucket of uploaded artefacts (nil:
	// none).
	uploads *blob.Bucket
	name    string
	now     func() time.Time
	after   func() // wakes the watches (the edge's too) and the controller
	// wakeShards makes every in-process shard converge now (nil: none):
	// after a move report, the other shard of the move has its next step.
	wakeShards func()
}

func (l *storeLink) Register(ctx context.Context, reg shardagent.Registration) error {
	_, err := l.st.UpdateShard(ctx, l.name, func(sh *store.Shard) error {
		sh.Capacity, sh.Labels, sh.Roots, sh.AgentVersion = reg.Capacity, reg.Labels, reg.Roots, reg.AgentVersion
		sh.Dir, sh.Gateway = reg.Dir, reg.Gateway
		if reg.Provider != "" {
			sh.Provider = reg.Provider
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("register shard %s: %w", l.name, err)
	}
	l.after()
	return nil
}

func (l *storeLink) Heartbeat(ctx context.Context, u store.Usage) error {
	return l.st.Heartbeat(ctx, l.name, l.now(), u)
}

func (l *storeLink) Usage(ctx context.Context, rep *api.ShardUsageReport) error {
	_, err := api.IngestShardUsage(ctx, l.st, l.name, l.now(), rep)
	return err
}

func (l *storeLink) Sites(wake func()) shard.Sites {
	return notifyingSites{Sites: shard.FromStore(l.st), after: l.after, wakeShards: l.wakeShards}
}

func (l *storeLink) Jobs(func()) shard.Jobs {
	return storeJobs{st: l.st, name: l.name, after: l.after}
}

func (l *storeLink) Repos() shardagent.RepoOpener { return managerRepos(l.repos, l.name) }

func (l *storeLink) Uploads() func(context.Context, string) (io.ReadCloser, error) {
	return shardagent.BucketUploads(l.uploads)
}

func (l *storeLink) Certificate(context.Context, []byte) ([]byte, []byte, error) {
	return nil, nil, errors.New("shards inside `aipress up` serve only its own edge: they have no gateway")
}

func (l *storeLink) CABundle(context.Context) ([]byte, error) {
	return nil, errors.New("shards inside `aipress up` serve only its own edge: they have no gateway")
}

func (l *storeLink) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// The keys of site moves and sites' logins are derived in process: from
// the control plane's key-encryption key and the platform secret.

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

func (l *storeLink) LoginKeys() shard.LoginKeyFunc {
	if l.loginKey == nil {
		return nil
	}
	return func(_ context.Context, _, uid string) (string, error) {
		return hex.EncodeToString(l.loginKey(uid)), nil
	}
}

// notifyingSites wakes the watches (the edge's routes among them) whenever
// the shard reports, so a site is routed the moment it is ready rather than
// at the next tick; after a move report it wakes the shards too, so the
// move's next step (often the other shard's) starts at once rather than at
// that shard's next resync tick (the control plane's hub wakes only remote
// agents' watches).
type notifyingSites struct {
	shard.Sites
	after      func()
	wakeShards func()
}

func (n notifyingSites) UpdateStatus(ctx context.Context, name, uid string, fn func(*site.Status)) error {
	err := n.Sites.UpdateStatus(ctx, name, uid, fn)
	n.after()
	return err
}

func (n notifyingSites) UpdateMove(ctx context.Context, name, uid string, fn func(*site.Move)) error {
	err := n.Sites.UpdateMove(ctx, name, uid, fn)
	n.after()
	if n.wakeShards != nil {
		n.wakeShards()
	}
	return err
}

func (n notifyingSites) Finalize(ctx context.Context, name, uid string) error {
	err := n.Sites.Finalize(ctx, name, uid)
	n.after()
	return err
}
