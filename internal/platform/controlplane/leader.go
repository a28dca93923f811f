package controlplane

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aipress/aipress/internal/leader"
	storeopen "github.com/aipress/aipress/internal/store/open"
)

// LeaseName is the leader-election lease of the control plane's periodic
// work: of all replicas on one PostgreSQL database, the one holding it runs
// that work.
const LeaseName = "aipress/control-plane"

// elector runs work while this process leads (package leader).
type elector interface {
	Run(ctx context.Context, work func(ctx context.Context)) error
}

// newElector returns the elector of the store spec: a PostgreSQL advisory
// lock on the store's database, or, for SQLite, which one process owns,
// leader.Solo.
func newElector(spec string, log *slog.Logger) (elector, error) {
	kind, err := storeopen.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if kind != storeopen.Postgres {
		return leader.Solo{}, nil
	}
	l, err := leader.NewPostgres(spec)
	if err != nil {
		return nil, err
	}
	return &leader.Elector{Locker: l, Name: LeaseName, Logger: log.With("component", "leader")}, nil
}
