package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/aipress/aipress/internal/placement"
	"github.com/aipress/aipress/internal/shardlayout"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// The agent protocol: a shard agent (a token of role shard whose Subject is
// the shard's name) registers its shard, heartbeats, watches the sites its
// shard holds and reports their status, its part of their moves and the end
// of their deletion. Nothing in the control plane calls a shard: the agent
// pulls. A shard token acts only for its own shard.

// RegisterRequest is the body of POST /v1/agent/register.
type RegisterRequest struct {
	// Capacity is how many sites the shard takes (0: the default); the
	// control plane caps it at Config.MaxShardCapacity.
	Capacity     int               `json:"capacity"`
	Labels       map[string]string `json:"labels,omitempty"`
	Roots        []string          `json:"roots,omitempty"`
	AgentVersion string            `json:"agent_version,omitempty"`
	Provider     string            `json:"provider,omitempty"`
	// Dir is the shard's data directory on its machine: the sites'
	// docroots and pool sockets are derived from it (package
	// shardlayout), and status reports must match.
	Dir string `json:"dir,omitempty"`
	// Gateway is the host:port where edges on other machines reach the
	// shard's gateway (mutual TLS); empty: only edges on the shard's own
	// machine serve its sites.
	Gateway string `json:"gateway,omitempty"`
}

// HeartbeatRequest is the body of POST /v1/agent/heartbeat.
type HeartbeatRequest struct {
	Usage store.Usage `json:"usage"`
}

// StatusReport is the body of PUT /v1/agent/sites/{name}/status: the whole
// status the shard observed for the site with that UID. Status.Shard is the
// control plane's and is kept.
type StatusReport struct {
	UID    string      `json:"uid"`
	Status site.Status `json:"status"`
}

// MoveReport is the body of PUT /v1/agent/sites/{name}/move: the move as the
// shard sees it after its step. Only the fields the calling shard reports
// are taken (see site.Move); Move.ID, when set, must be the current move's.
type MoveReport struct {
	UID  string    `json:"uid"`
	Move site.Move `json:"move"`
}

// FinalizeRequest is the body of POST /v1/agent/sites/{name}/finalize.
type FinalizeRequest struct {
	UID string `json:"uid"`
}

// Registration bounds.
const (
	MaxShardCapacity = 100000
	maxShortString   = 100
	// DefaultMaxShardCapacity is Config.MaxShardCapacity's default: a
	// shard's own word on its capacity is capped there.
	DefaultMaxShardCapacity = 500
)

// forAgent returns the site as sent to a shard agent. Unlike what operators
// and edges get, it keeps the admin password hash: the shard installs
// WordPress with it (and stores it in the site's database anyway).
func forAgent(s *site.Site) *site.Site { return s }

func conflict(format string, args ...any) HTTPError {
	return errorf(http.StatusConflict, CodeConflict, format, args...)
}

func (req *RegisterRequest) validate() error {
	if req.Capacity < 0 || req.Capacity > MaxShardCapacity {
		return badRequest("capacity must be between 0 and %d", MaxShardCapacity)
	}
	if err := validateLabels(req.Labels); err != nil {
		return err
	}
	for _, r := range req.Roots {
		if !filepath.IsAbs(r) || filepath.Clean(r) != r {
			return badRequest("root %q is not a clean absolute path", r)
		}
	}
	if len(req.AgentVersion) > maxShortString || len(req.Provider) > maxShortString {
		return badRequest("agent_version and provider are at most %d characters", maxShortString)
	}
	if req.Dir != "" && (!filepath.IsAbs(req.Dir) || filepath.Clean(req.Dir) != req.Dir || req.Dir == "/" || len(req.Dir) > 1024) {
		return badRequest("dir %q is not a clean absolute path below /", req.Dir)
	}
	if req.Gateway != "" {
		if err := validGatewayAddr(req.Gateway); err != nil {
			return badRequest("gateway %q: %v", req.Gateway, err)
		}
	}
	return nil
}

// hostnameRE is a DNS name (labels of letters, digits and '-').
var hostnameRE = regexp.MustCompile(`^(?i:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.(?i:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?))*$`)

// validGatewayAddr checks a gateway address: a host name or IP address and
// a port.
func validGatewayAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return errors.New("port must be 1-65535")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsUnspecified() || ip.IsMulticast() {
			return errors.New("not an address edges can connect to")
		}
		return nil
	}
	if len(host) > 253 || !hostnameRE.MatchString(host) {
		return errors.New("host must be a DNS name or an IP address")
	}
	return nil
}

func (s *server) agentRegister(c *call) (response, error) {
	ctx := c.r.Context()
	var req RegisterRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if err := req.validate(); err != nil {
		return response{}, err
	}
	name := c.token.Subject
	c.target = name
	if limit := s.maxShardCapacity(); req.Capacity > limit || req.Capacity == 0 && limit < placement.DefaultCapacity {
		s.log.Warn("shard registered a capacity above the operator's cap; capped", "shard", name, "capacity", req.Capacity, "cap", limit)
		req.Capacity = limit
	}
	apply := func(sh *store.Shard) {
		sh.Capacity, sh.Labels, sh.Roots = req.Capacity, req.Labels, req.Roots
		sh.AgentVersion, sh.Provider = req.AgentVersion, req.Provider
		sh.Dir, sh.Gateway = req.Dir, req.Gateway
	}
	sh := &store.Shard{Name: name, Phase: store.ShardPending, CreatedAt: s.cfg.Clock().UTC()}
	apply(sh)
	err := s.cfg.Store.CreateShard(ctx, sh)
	if err == nil {
		got, err := s.cfg.Store.GetShard(ctx, name)
		if err != nil {
			return response{}, internal(fmt.Errorf("get shard %q: %w", name, err))
		}
		return response{status: http.StatusCreated, body: got}, nil
	}
	if !errors.Is(err, store.ErrAlreadyExists) {
		return response{}, internal(fmt.Errorf("create shard %q: %w", name, err))
	}
	// A known shard: update what registration owns, never the operator's
	// cordon/drain nor the leader's phase.
	var before int64
	got, err := s.cfg.Store.UpdateShard(ctx, name, func(sh *store.Shard) error {
		before = sh.ResourceVersion
		apply(sh)
		return nil
	})
	if err != nil {
		return response{}, internal(fmt.Errorf("update shard %q: %w", name, err))
	}
	return response{status: http.StatusOK, body: got, unchanged: got.ResourceVersion == before}, nil
}

// maxShardCapacity is the operator's cap on registered capacities.
func (s *server) maxShardCapacity() int {
	if s.cfg.MaxShardCapacity > 0 {
		return min(s.cfg.MaxShardCapacity, MaxShardCapacity)
	}
	return DefaultMaxShardCapacity
}

// checkPaths refuses a docroot or pool endpoint that is not the one the
// site has on shard by the shard's registered directory (shardlayout): a
// shard may report only where its own site lives, never a path of its
// choosing. Empty values are left alone.
func checkPaths(sh *store.Shard, uid, docroot, endpoint string) error {
	if docroot == "" && endpoint == "" {
		return nil
	}
	if sh.Dir == "" {
		return errorf(http.StatusUnprocessableEntity, CodeInvalidArgument, "shard %q registered no directory; restart its agent to register again", sh.Name)
	}
	l := shardlayout.Layout{Name: sh.Name, Dir: sh.Dir}
	if want := l.Site(uid).Docroot; docroot != "" && docroot != want {
		return errorf(http.StatusUnprocessableEntity, CodeInvalidArgument, "docroot %q is not the site's docroot on shard %q (%s)", docroot, sh.Name, want)
	}
	if want := l.Endpoint(uid); endpoint != "" && endpoint != want {
		return errorf(http.StatusUnprocessableEntity, CodeInvalidArgument, "endpoint %q is not the site's pool on shard %q (%s)", endpoint, sh.Name, want)
	}
	return nil
}

// reportingShard returns the calling shard's record.
func (s *server) reportingShard(c *call) (*store.Shard, error) {
	name := c.token.Subject
	sh, err := s.cfg.Store.GetShard(c.r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(http.StatusConflict, CodeConflict, "shard %q is not registered", name)
	}
	if err != nil {
		return nil, internal(fmt.Errorf("get shard %q: %w", name, err))
	}
	return sh, nil
}

func (s *server) agentHeartbeat(c *call) (response, error) {
	var req HeartbeatRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	name := c.token.Subject
	c.target = name
	err := s.cfg.Store.Heartbeat(c.r.Context(), name, s.cfg.Clock().UTC(), req.Usage)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, errorf(http.StatusNotFound, CodeNotFound, "shard %q is not registered", name)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("heartbeat %q: %w", name, err))
	}
	// A heartbeat takes no revision: nobody needs waking.
	return response{status: http.StatusNoContent, unchanged: true}, nil
}

// agentUpdate runs mutate on the named site for the calling shard and
// answers with the site; a mutate that changes nothing writes nothing.
func (s *server) agentUpdate(c *call, mutate func(*site.Site) error) (response, error) {
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	var before int64
	st, err := s.cfg.Store.UpdateSite(c.r.Context(), name, func(cur *site.Site) error {
		before = cur.Metadata.ResourceVersion
		return mutate(cur)
	})
	if err != nil {
		var he HTTPError
		switch {
		case errors.As(err, &he):
			return response{}, he
		case errors.Is(err, store.ErrNotFound):
			return response{}, siteNotFound(name)
		}
		return response{}, internal(fmt.Errorf("update site %q: %w", name, err))
	}
	return response{status: http.StatusOK, body: forAgent(st), unchanged: st.Metadata.ResourceVersion == before}, nil
}

func (s *server) agentStatus(c *call) (response, error) {
	var req StatusReport
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	shard := c.token.Subject
	sh, err := s.reportingShard(c)
	if err != nil {
		return response{}, err
	}
	return s.agentUpdate(c, func(cur *site.Site) error {
		if cur.Metadata.UID != req.UID {
			return conflict("site %q has another uid (it was re-created)", cur.Metadata.Name)
		}
		if cur.Status.Shard != shard {
			return conflict("site %q is not on shard %q", cur.Metadata.Name, shard)
		}
		if err := checkPaths(sh, req.UID, req.Status.Docroot, req.Status.Endpoint); err != nil {
			return err
		}
		next := req.Status
		next.Shard = cur.Status.Shard
		cur.Status = next
		return nil
	})
}

func (s *server) agentMove(c *call) (response, error) {
	var req MoveReport
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	shard := c.token.Subject
	sh, err := s.reportingShard(c)
	if err != nil {
		return response{}, err
	}
	now := s.cfg.Clock().UTC()
	return s.agentUpdate(c, func(cur *site.Site) error {
		if cur.Metadata.UID != req.UID {
			return conflict("site %q has another uid (it was re-created)", cur.Metadata.Name)
		}
		m := cur.Move
		if !m.Active() || (shard != m.Source && shard != m.Target) {
			return conflict("site %q has no active move involving shard %q", cur.Metadata.Name, shard)
		}
		if req.Move.ID != "" && req.Move.ID != m.ID {
			return conflict("move %q of site %q is not the current one (%s)", req.Move.ID, cur.Metadata.Name, m.ID)
		}
		// Only the target reports where the site lives on it (the source
		// echoes the move it was sent, which mergeMoveReport ignores).
		if shard == m.Target {
			if err := checkPaths(sh, req.UID, req.Move.TargetDocroot, req.Move.TargetEndpoint); err != nil {
				return err
			}
		}
		mergeMoveReport(m, &req.Move, shard)
		site.AdvanceMove(cur, now)
		return nil
	})
}

// mergeMoveReport copies into m the fields of r that shard may report: the
// source its export (and, after the switch, its cleanup; on abort, its
// unfreeze), the target its import (and, on abort, its cleanup).
// Timestamps are set once and never cleared, so a report made from a stale
// copy cannot undo an earlier one; Error is taken only from the shard whose
// step the phase is.
func mergeMoveReport(m, r *site.Move, shard string) {
	once := func(dst **time.Time, src *time.Time) {
		if *dst == nil && src != nil {
			t := *src
			*dst = &t
		}
	}
	str := func(dst *string, src string) {
		if src != "" {
			*dst = src
		}
	}
	switch shard {
	case m.Source:
		str(&m.PreArtifact, r.PreArtifact)
		once(&m.PreExported, r.PreExported)
		once(&m.FreezeStarted, r.FreezeStarted)
		str(&m.Artifact, r.Artifact)
		once(&m.Exported, r.Exported)
		if m.Phase == site.MoveCleaningUp {
			once(&m.CleanedUp, r.CleanedUp)
		}
		if m.Phase == site.MoveAborting {
			once(&m.Unfrozen, r.Unfrozen)
		}
		if m.Phase == site.MoveExporting || m.Phase == site.MoveCleaningUp || m.Phase == site.MoveAborting ||
			(m.Phase == site.MoveCopying && m.PreExported == nil) {
			m.Error = r.Error
		}
	case m.Target:
		once(&m.PreImported, r.PreImported)
		once(&m.Imported, r.Imported)
		str(&m.TargetEndpoint, r.TargetEndpoint)
		str(&m.TargetDocroot, r.TargetDocroot)
		if m.Phase == site.MoveAborting {
			once(&m.CleanedUp, r.CleanedUp)
		}
		if m.Phase == site.MoveImporting || m.Phase == site.MoveAborting ||
			(m.Phase == site.MoveCopying && m.PreExported != nil) {
			m.Error = r.Error
		}
	}
}

func (s *server) agentFinalize(c *call) (response, error) {
	ctx := c.r.Context()
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	var req FinalizeRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	shard := c.token.Subject
	cur, err := s.cfg.Store.GetSite(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, siteNotFound(name)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("get site %q: %w", name, err))
	}
	switch {
	case cur.Metadata.UID != req.UID:
		return response{}, conflict("site %q has another uid (it was re-created)", name)
	case cur.Status.Shard != shard:
		return response{}, conflict("site %q is not on shard %q", name, shard)
	case cur.Metadata.DeletionRequested == nil:
		return response{}, conflict("deletion of site %q was not requested", name)
	}
	if err := s.cfg.Store.DeleteSite(ctx, name); errors.Is(err, store.ErrNotFound) {
		return response{}, siteNotFound(name)
	} else if err != nil {
		return response{}, internal(fmt.Errorf("delete site %q: %w", name, err))
	}
	return response{status: http.StatusNoContent}, nil
}
