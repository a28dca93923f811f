package gitsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	yaml "go.yaml.in/yaml/v3"

	"github.com/aipress/aipress/internal/egress"
	"github.com/aipress/aipress/internal/store"
)

// Applier applies site files: the API's apply path (api.GitApplier).
//
// Contract: Apply validates req.Doc and computes its plan; unless
// req.DryRun it applies it (creates the site or updates its spec and
// starts the code job), acting as a developer of req.Org, recording
// req.Source in the audit log. With req.Site set, the file must name that
// existing site. Errors name what is wrong (line and column in the file
// when known); applying the same file twice changes nothing the second
// time. Safe for concurrent use.
type Applier interface {
	Apply(ctx context.Context, req ApplyRequest) (*ApplyResult, error)
}

// ApplyRequest is one site file to apply.
type ApplyRequest struct {
	// Org is the organisation the applier acts in (as a developer); the
	// file's site belongs to it (or is created in it).
	Org string
	// Site, for a site's configuration: the site the file must name.
	Site string
	// File is the file's path in the repository (for messages).
	File   string
	Doc    []byte
	DryRun bool
	// Source is "git <url>@<commit>" for the audit log.
	Source string
}

// ApplyResult is what applying one file did (or, dry, would do).
type ApplyResult struct {
	Site    string
	Create  bool
	Changes []store.CodeChange
	// Job is the code job started ("" when none).
	Job string
}

// ApplierFunc adapts a function to Applier.
type ApplierFunc func(ctx context.Context, req ApplyRequest) (*ApplyResult, error)

// Apply implements Applier.
func (f ApplierFunc) Apply(ctx context.Context, req ApplyRequest) (*ApplyResult, error) {
	return f(ctx, req)
}

// PollerConfig configures a Poller.
type PollerConfig struct {
	Manager *Manager
	Applier Applier
	// CacheDir holds the fetched repositories (one bare repository per
	// URL); typically <data dir>/gitsync.
	CacheDir string
	// Depth is how many commits deep a fetch goes, and how many new
	// commits one sync walks at most (default 100); a branch that moved
	// further since the last sync has its head applied alone.
	Depth int
	// Tick is how often the records are read to find what is due
	// (default 10s); Manager.Wake reads them at once.
	Tick   time.Duration
	Logger *slog.Logger
	// Clock defaults to time.Now.
	Clock func() time.Time
	// AllowPrivateNetworks lets fetches reach loopback and private
	// addresses, over plain http too (--allow-private-fetch: tests,
	// private mirrors); off, go-git's transport is guarded (package
	// egress) and a stored URL that is not allowed is refused.
	AllowPrivateNetworks bool
}

// Poller syncs every configuration that is due: its interval passed since
// its last sync, or a sync was requested after it. Run it on one replica
// (the control plane's leader).
type Poller struct {
	cfg PollerConfig
	m   *Manager
	log *slog.Logger
}

// NewPoller returns a Poller.
func NewPoller(cfg PollerConfig) (*Poller, error) {
	if cfg.Manager == nil || cfg.Applier == nil || cfg.CacheDir == "" {
		return nil, errors.New("gitsync: a poller needs a manager, an applier and a cache directory")
	}
	if cfg.Depth <= 0 {
		cfg.Depth = 100
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Poller{cfg: cfg, m: cfg.Manager, log: cfg.Logger}, nil
}

// Run syncs what is due every Tick and when woken, until ctx ends.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Tick)
	defer t.Stop()
	for {
		if err := p.SyncDue(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("git sync pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-p.m.Woken():
		}
	}
}

// SyncDue syncs, one after the other, every configuration that is due.
func (p *Poller) SyncDue(ctx context.Context) error {
	recs, err := p.m.list(ctx)
	if err != nil {
		return err
	}
	now := p.cfg.Clock()
	var errs []error
	for _, rec := range recs {
		if !due(rec, now) {
			continue
		}
		if err := p.sync(ctx, rec); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

func due(rec *record, now time.Time) bool {
	last := rec.Status.LastSyncAt
	switch {
	case last == nil || rec.Status.Basis != rec.Config.basis():
		return true
	case rec.RequestedAt != nil && !rec.RequestedAt.Before(*last):
		return true
	default:
		return !now.Before(last.Add(rec.Config.every()))
	}
}

// Sync syncs t now (ErrNotFound). The outcome is in t's status; the error
// is only for what kept the status from being written.
func (p *Poller) Sync(ctx context.Context, t Target) error {
	rec, err := p.m.load(ctx, t)
	if err != nil {
		return err
	}
	return p.sync(ctx, rec)
}

// run is one sync of one configuration.
type run struct {
	p    *Poller
	rec  *record
	repo *git.Repository
	st   Status
}

func (p *Poller) sync(ctx context.Context, rec *record) error {
	r := &run{p: p, rec: rec, st: rec.Status}
	if r.st.Basis != rec.Config.basis() {
		r.st = Status{Basis: rec.Config.basis()}
	}
	r.st.Notice = ""
	// LastSyncAt is the sync's start: a request made while it runs makes
	// the configuration due again.
	start := p.cfg.Clock().UTC()
	r.do(ctx)
	if ctx.Err() != nil {
		return ctx.Err() // cut short: the next leader syncs again
	}
	r.st.LastSyncAt = &start
	if r.st.LastError != nil {
		p.log.Info("git sync stopped", "target", rec.Target.String(), "commit", r.st.LastError.Commit,
			"file", r.st.LastError.File, "err", r.st.LastError.Message)
	}
	return p.m.setStatus(ctx, rec, r.st)
}

// fail records why the sync stopped at commit c (nil: before any commit).
func (r *run) fail(c *object.Commit, file string, err error) {
	se := &SyncError{File: file, Message: truncate(err.Error(), 2000), At: r.p.cfg.Clock().UTC()}
	if c != nil {
		se.Commit = c.Hash.String()
	}
	se.Line, se.Column = position(se.Message)
	if file != "" && se.Line > 0 {
		// The position is in the fields: the message need not repeat it.
		se.Message = strings.TrimPrefix(se.Message, fmt.Sprintf("%s:%d:%d: ", file, se.Line, se.Column))
	}
	r.st.LastError = se
}

func (r *run) do(ctx context.Context) {
	cfg := r.rec.Config
	var cred *Credential
	if cfg.Credentials != nil {
		c, err := r.p.m.credential(ctx, r.rec.Org, cfg.Credentials.Secret)
		if err != nil {
			r.fail(nil, "", err)
			return
		}
		cred = c
	}
	// A record stored while private fetches were allowed is checked
	// again; go-git's transport is guarded unless the context allows.
	if err := checkURL(cfg.URL, r.p.cfg.AllowPrivateNetworks); err != nil {
		r.fail(nil, "", err)
		return
	}
	repo, head, err := fetch(egress.WithAllowPrivate(ctx, r.p.cfg.AllowPrivateNetworks), r.p.cfg.CacheDir, r.p.cfg.Depth, cfg, cred)
	if err != nil {
		r.fail(nil, "", err)
		return
	}
	r.repo = repo
	r.st.Head = head.String()
	base := plumbing.ZeroHash
	if r.st.LastApplied != nil {
		base = plumbing.NewHash(r.st.LastApplied.Hash)
	}
	chain, found, err := firstParents(repo, head, base, r.p.cfg.Depth)
	if err != nil {
		r.fail(nil, "", err)
		return
	}
	var prev map[string]plumbing.Hash // the files at base, by path
	if found {
		if c, err := repo.CommitObject(base); err == nil {
			if fs, err := files(c, r.rec.Kind, cfg.Path); err == nil {
				prev = map[string]plumbing.Hash{}
				for _, f := range fs {
					prev[f.Path] = f.Hash
				}
			}
		}
	} else if len(chain) > 0 {
		if !base.IsZero() {
			r.st.Notice = fmt.Sprintf("the last applied commit %s is not among the branch's last %d first-parent commits (history rewritten, or more new commits): applied the head alone",
				short(base), r.p.cfg.Depth)
		}
		chain = chain[len(chain)-1:]
	}
	// A commit that failed before is not tried again once newer commits
	// follow it: they are applied instead (a fix), compared with the last
	// applied commit, so the failed commit's content is never applied
	// unless a later commit keeps it — and then that commit fails too.
	if le := r.st.LastError; le != nil && le.Commit != "" {
		for i, c := range chain[:max(len(chain)-1, 0)] {
			if c.Hash.String() == le.Commit {
				r.st.Notice = strings.TrimSpace(r.st.Notice + fmt.Sprintf(" skipped %s, which failed, for the commits after it", short(c.Hash)))
				chain = chain[i+1:]
				break
			}
		}
	}
	r.st.LastError = nil
	r.st.Pending, r.st.PendingCount = nil, 0
	for i, c := range chain {
		cur, ok := r.applyCommit(ctx, c, prev)
		if !ok {
			r.setPending(chain[i:])
			break
		}
		prev = cur
		now := r.p.cfg.Clock().UTC()
		r.st.LastApplied = &Commit{Hash: c.Hash.String(), Subject: subject(c), Time: c.Committer.When.UTC(), AppliedAt: &now}
		// Progress is kept commit by commit: a crash resumes after the
		// last applied one.
		if i < len(chain)-1 {
			if err := r.p.m.setStatus(ctx, r.rec, r.st); err != nil {
				r.fail(c, "", err)
				r.setPending(chain[i+1:])
				break
			}
		}
	}
	r.drift(ctx)
}

func (r *run) setPending(cs []*object.Commit) {
	r.st.PendingCount = len(cs)
	r.st.Pending = nil
	for _, c := range cs[:min(len(cs), MaxListed)] {
		r.st.Pending = append(r.st.Pending, Commit{Hash: c.Hash.String(), Subject: subject(c), Time: c.Committer.When.UTC()})
	}
}

// applyCommit validates then applies the site files of c that differ from
// prev (every file when prev is nil), and returns c's files by path; ok is
// false when it failed (r.st.LastError says why).
func (r *run) applyCommit(ctx context.Context, c *object.Commit, prev map[string]plumbing.Hash) (map[string]plumbing.Hash, bool) {
	fs, err := files(c, r.rec.Kind, r.rec.Config.Path)
	if err != nil {
		r.fail(c, r.rec.Config.Path, err)
		return nil, false
	}
	cur := map[string]plumbing.Hash{}
	var reqs []ApplyRequest
	source := "git " + r.rec.Config.URL + "@" + c.Hash.String()
	for _, f := range fs {
		cur[f.Path] = f.Hash
		if h, ok := prev[f.Path]; ok && h == f.Hash {
			continue
		}
		doc, err := f.read()
		if err != nil {
			r.fail(c, f.Path, err)
			return nil, false
		}
		if err := r.checkMetadata(doc); err != nil {
			r.fail(c, f.Path, err)
			return nil, false
		}
		reqs = append(reqs, ApplyRequest{Org: r.rec.Org, File: f.Path, Doc: doc, Source: source})
		if r.rec.Kind == KindSite {
			reqs[len(reqs)-1].Site = r.rec.Name
		}
	}
	// Every file is validated before any is applied.
	for _, req := range reqs {
		req.DryRun = true
		if _, err := r.p.cfg.Applier.Apply(ctx, req); err != nil {
			r.fail(c, req.File, err)
			return nil, false
		}
	}
	for _, req := range reqs {
		res, err := r.p.cfg.Applier.Apply(ctx, req)
		if err != nil {
			r.fail(c, req.File, err)
			return nil, false
		}
		r.p.log.Info("git sync applied", "target", r.rec.Target.String(), "commit", short(c.Hash), "file", req.File,
			"site", res.Site, "create", res.Create, "changes", len(res.Changes), "job", res.Job)
	}
	return cur, true
}

// checkMetadata refuses a file naming another organisation, or (a site's
// configuration) another site. A file that does not parse is left to the
// applier, whose errors have positions.
func (r *run) checkMetadata(doc []byte) error {
	var f struct {
		Metadata struct {
			Name string `yaml:"name"`
			Org  string `yaml:"org"`
		} `yaml:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &f); err != nil {
		return nil
	}
	if f.Metadata.Org != "" && f.Metadata.Org != r.rec.Org {
		return fmt.Errorf("metadata.org: %q, but this repository is synced for organisation %s", f.Metadata.Org, r.rec.Org)
	}
	if r.rec.Kind == KindSite && f.Metadata.Name != r.rec.Name {
		return fmt.Errorf("metadata.name: %q, but this repository is synced for site %s", f.Metadata.Name, r.rec.Name)
	}
	return nil
}

// drift dry-runs the files at the last applied commit.
func (r *run) drift(ctx context.Context) {
	r.st.Drift = nil
	if r.st.LastApplied == nil || r.repo == nil {
		return
	}
	c, err := r.repo.CommitObject(plumbing.NewHash(r.st.LastApplied.Hash))
	if err != nil {
		return
	}
	fs, err := files(c, r.rec.Kind, r.rec.Config.Path)
	if err != nil {
		return
	}
	for _, f := range fs {
		doc, err := f.read()
		if err != nil || r.checkMetadata(doc) != nil {
			continue
		}
		req := ApplyRequest{Org: r.rec.Org, File: f.Path, Doc: doc, DryRun: true,
			Source: "git " + r.rec.Config.URL + "@" + c.Hash.String()}
		if r.rec.Kind == KindSite {
			req.Site = r.rec.Name
		}
		res, err := r.p.cfg.Applier.Apply(ctx, req)
		if err != nil {
			continue
		}
		for _, ch := range res.Changes {
			if len(r.st.Drift) == MaxListed {
				return
			}
			r.st.Drift = append(r.st.Drift, Drift{Site: res.Site, CodeChange: ch})
		}
	}
}

var positionRE = regexp.MustCompile(`(?:^|[\s:(])(\d+):(\d+)(?:[:\s),]|$)|line (\d+),? col(?:umn)? (\d+)`)

// position finds "line:column" (or "line L, column C") in an error
// message; 0, 0 when there is none.
func position(msg string) (line, col int) {
	m := positionRE.FindStringSubmatch(msg)
	if m == nil {
		return 0, 0
	}
	l, c := m[1], m[2]
	if l == "" {
		l, c = m[3], m[4]
	}
	line, _ = strconv.Atoi(l)
	col, _ = strconv.Atoi(c)
	return line, col
}

func subject(c *object.Commit) string {
	s, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
	return truncate(s, 200)
}

func short(h plumbing.Hash) string { return h.String()[:12] }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
