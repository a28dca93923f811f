package shardagent

import (
	"context"
	"io"
	"log/slog"

	"github.com/aipress/aipress/internal/agent"
	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/memreturn"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/store"
)

// AgentConfig is a shard agent's connection to its control plane.
type AgentConfig struct {
	Server string // the control plane's API URL
	Token  string // the shard's agent token (`aipress shard token create`)
}

// Run runs `aipress shard`: one shard agent that talks to the control
// plane over its API, until ctx ends.
func Run(ctx context.Context, cfg Config, ac AgentConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := apiclient.New(ac.Server, ac.Token)
	go memreturn.Run(ctx, memreturn.Config{}) // idle heap back to the OS after bursts
	return RunLink(ctx, cfg, &apiLink{c: c, name: cfg.Name, log: cfg.Logger.With("shard", cfg.Name)})
}

// apiLink is the Link over the control plane's API (package agent).
type apiLink struct {
	c     *apiclient.Client
	name  string
	log   *slog.Logger
	sites *agent.Sites
	jobs  *agent.Jobs
	repos *agent.Repos
}

func (l *apiLink) Register(ctx context.Context, reg Registration) error {
	_, err := agent.Register(ctx, l.c, apiclient.RegisterRequest{
		Capacity: reg.Capacity, Labels: reg.Labels, Roots: reg.Roots,
		Provider: reg.Provider, AgentVersion: reg.AgentVersion, Dir: reg.Dir, Gateway: reg.Gateway,
	})
	return err
}

func (l *apiLink) Certificate(ctx context.Context, csr []byte) ([]byte, []byte, error) {
	resp, err := l.c.AgentCertificate(ctx, csr)
	if err != nil {
		return nil, nil, err
	}
	return []byte(resp.Certificate), []byte(resp.CA), nil
}

func (l *apiLink) CABundle(ctx context.Context) ([]byte, error) {
	resp, err := l.c.AgentMeshCA(ctx)
	if err != nil {
		return nil, err
	}
	return []byte(resp.CA), nil
}

func (l *apiLink) Heartbeat(ctx context.Context, u store.Usage) error { return l.c.Heartbeat(ctx, u) }

func (l *apiLink) Usage(ctx context.Context, rep *api.ShardUsageReport) error {
	_, err := l.c.ReportShardUsage(ctx, rep)
	return err
}

func (l *apiLink) Sites(wake func()) shard.Sites {
	l.sites = agent.NewSites(agent.SitesConfig{Client: l.c, Shard: l.name, Wake: wake, Logger: l.log})
	return l.sites
}

func (l *apiLink) Jobs(wake func()) shard.Jobs {
	l.jobs = agent.NewJobs(agent.JobsConfig{Client: l.c, Shard: l.name, Wake: wake, Logger: l.log})
	return l.jobs
}

func (l *apiLink) Uploads() func(context.Context, string) (io.ReadCloser, error) {
	return agentUploads(l.c)
}

func (l *apiLink) Repos() RepoOpener {
	l.repos = &agent.Repos{Client: l.c}
	return l.repos.Open
}

// Run follows the shard's sites and jobs until ctx ends.
func (l *apiLink) Run(ctx context.Context) error {
	errs := make(chan error, 2)
	go func() { errs <- l.sites.Run(ctx) }()
	go func() { errs <- l.jobs.Run(ctx) }()
	err := <-errs
	if err2 := <-errs; err == nil {
		err = err2
	}
	if l.repos != nil {
		_ = l.repos.Close()
	}
	return err
}
