// Package platform runs the all-in-one AIPress platform (`aipress up`): the
// control-plane API, one local shard and the edge in one process.
package platform

import (
	"context"
	"errors"
	"log/slog"
)

// Config is the typed configuration of `aipress up`.
type Config struct {
	DataDir  string // default ./aipress-data
	HTTPAddr string // edge, default :8080
	APIAddr  string // control-plane API, default 127.0.0.1:7070
	Logger   *slog.Logger
}

// Run starts the platform and blocks until ctx is cancelled, then stops
// everything (child processes included) and returns.
func Run(ctx context.Context, cfg Config) error {
	return errors.New("not implemented yet")
}
