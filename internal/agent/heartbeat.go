package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/store"
)

// DefaultHeartbeatInterval is how often a shard agent heartbeats.
const DefaultHeartbeatInterval = 5 * time.Second

// Register registers the client's shard (its token's subject) with the
// control plane, or updates its registration, and returns the shard.
func Register(ctx context.Context, c *apiclient.Client, req apiclient.RegisterRequest) (*store.Shard, error) {
	sh, err := c.Register(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("register shard: %w", err)
	}
	return sh, nil
}

// HeartbeatConfig configures Heartbeat.
type HeartbeatConfig struct {
	Client *apiclient.Client
	// Interval between heartbeats (default DefaultHeartbeatInterval).
	Interval time.Duration
	// Usage reports the shard's usage for each heartbeat (nil: zero usage).
	Usage func(context.Context) (store.Usage, error)
	// Register, if set, is sent again when the control plane does not know
	// the shard (its record was deleted).
	Register *apiclient.RegisterRequest
	Logger   *slog.Logger
}

// Heartbeat beats at once and then every Interval until ctx is done.
// Failures are logged and the next beat retries.
func Heartbeat(ctx context.Context, cfg HeartbeatConfig) error {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultHeartbeatInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		if err := beat(ctx, cfg); err != nil && ctx.Err() == nil {
			cfg.Logger.Warn("heartbeat", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func beat(ctx context.Context, cfg HeartbeatConfig) error {
	var usage store.Usage
	if cfg.Usage != nil {
		u, err := cfg.Usage(ctx)
		if err != nil {
			return fmt.Errorf("usage: %w", err)
		}
		usage = u
	}
	err := cfg.Client.Heartbeat(ctx, usage)
	if apiclient.IsNotFound(err) && cfg.Register != nil {
		if _, err := Register(ctx, cfg.Client, *cfg.Register); err != nil {
			return err
		}
		err = cfg.Client.Heartbeat(ctx, usage)
	}
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}
