package edgenode

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/memreturn"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/uptime"
)

// RunConfig configures `aipress edge`: an edge of its own, following the
// routing table of the control plane at Server with an edge token.
type RunConfig struct {
	Config
	Server, Token string // the control plane's API URL and an edge token
}

// Run runs `aipress edge` until ctx ends: the edge of Config, its routes,
// reports and gateway certificate through the control plane's API.
func Run(ctx context.Context, cfg RunConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	go memreturn.Run(ctx, memreturn.Config{}) // idle heap back to the OS after bursts
	log := cfg.Logger
	n, err := Open(cfg.Config)
	if err != nil {
		return err
	}
	client := apiclient.New(cfg.Server, cfg.Token)
	if err := n.Start(ctx, Links{Routes: client, Reports: APIReports{Client: client, Logger: log}, Mesh: client, Peers: client}); err != nil {
		return err
	}
	log.Info("AIPress edge is up", "edge", n.Addr().String(), "server", cfg.Server,
		"purge_secret", filepath.Join(n.dataDir, PurgeSecretFile))
	<-ctx.Done()
	log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	n.Close(shutdownCtx)
	log.Info("stopped")
	return nil
}

// APIReports sends an edge's reports to the control plane's API with its
// edge token (POST /v1/edge/waf-events, /v1/edge/usage, /v1/edge/probes).
type APIReports struct {
	Client *apiclient.Client
	Logger *slog.Logger // default: discard
}

// WAFEvents sends a batch of events; a batch the control plane refuses as
// invalid (400) is dropped, since sending it again would fail again.
func (r APIReports) WAFEvents(ctx context.Context, evs []site.WAFEvent) error {
	_, err := r.Client.ReportWAFEvents(ctx, evs)
	var ae *apiclient.Error
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		if r.Logger != nil {
			r.Logger.Warn("waf: the control plane refused a batch of events; dropped", "events", len(evs), "err", err)
		}
		return nil
	}
	return err
}

// Probes sends the uptime probes' results; a report the control plane
// refuses as invalid (400) is dropped, since sending it again would fail
// again.
func (r APIReports) Probes(ctx context.Context, results []uptime.Result) error {
	_, err := r.Client.ReportProbes(ctx, results)
	var ae *apiclient.Error
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		if r.Logger != nil {
			r.Logger.Warn("uptime: the control plane refused a report; dropped", "results", len(results), "err", err)
		}
		return nil
	}
	return err
}

// Usage sends the sites' bytes and traffic; the answer names the sites
// over their plan's monthly bandwidth.
func (r APIReports) Usage(ctx context.Context, rep *api.UsageReport) ([]string, error) {
	resp, err := r.Client.SendUsageReport(ctx, rep)
	if err != nil {
		return nil, err
	}
	return resp.Over, nil
}
