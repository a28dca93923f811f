package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/aipress/aipress/internal/rollout"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Staged and fleet updates (package rollout runs their jobs in the control
// plane). POST /v1/sites/{name}/updates starts a staged update of one site
// (body: store.UpdateParams); POST /v1/updates a fleet update of many
// (platform admins). Both answer 202 with the job; its result is the
// report (store.UpdateResult, store.FleetUpdateResult).

// FleetUpdateRequest is the body of POST /v1/updates: the change, the
// sites (exactly one of Sites, Org and WithPlugin; resolved to the list of
// sites when the job is created and stored in its params) and the wave
// settings (store.FleetUpdateParams; zero: the defaults).
type FleetUpdateRequest struct {
	Change store.UpdateParams `json:"change"`
	// Sites are the sites to update, in this order.
	Sites []string `json:"sites,omitempty"`
	// Org selects every site of the organisation.
	Org string `json:"org,omitempty"`
	// WithPlugin selects every site whose spec lists the plugin, or that
	// its shard found running it.
	WithPlugin     string  `json:"with_plugin,omitempty"`
	Canary         int     `json:"canary,omitempty"`
	WaveSize       int     `json:"wave_size,omitempty"`
	MaxFailureRate float64 `json:"max_failure_rate,omitempty"`
	Parallel       int     `json:"parallel,omitempty"`
}

// checkUpdateChange checks a change against a site's spec; an upload
// source must name an artefact uploaded to the site's organisation.
func (s *server) checkUpdateChange(ctx context.Context, st *site.Site, p store.UpdateParams) error {
	plugins, themes := slices.Clone(p.Plugins), slices.Clone(p.Themes)
	if err := s.checkUploads(ctx, st.Metadata.Org, &plugins, &themes); err != nil {
		return err
	}
	spec := st.Spec
	spec.SetCode(st.Spec.Code())
	return rollout.ApplyChange(&spec, p)
}

func (s *server) createUpdate(c *call) (response, error) {
	ctx := c.r.Context()
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	var p store.UpdateParams
	if err := decodeJSON(c.r, &p); err != nil {
		return response{}, err
	}
	if p.Fleet != "" {
		return response{}, badRequest("fleet is set by the platform (use POST /v1/updates)")
	}
	st, err := s.getPlacedSite(ctx, name, "update")
	if err != nil {
		return response{}, err
	}
	if site.IsStaging(name) {
		return response{}, conflict("site %q is a staging site; update the site it is a copy of", name)
	}
	if st.Status.Phase != site.PhaseReady {
		return response{}, conflict("site %q is %s; only a Ready site is updated", name, st.Status.Phase)
	}
	if err := s.checkUpdateChange(ctx, st, p); err != nil {
		if he := (HTTPError{}); errors.As(err, &he) {
			return response{}, err
		}
		return response{}, badRequest("%s", err.Error())
	}
	if j, err := s.activeJob(ctx, store.JobUpdate, name, ""); err != nil {
		return response{}, err
	} else if j != nil {
		return response{}, conflict("site %q is being updated already (job %s)", name, j.ID)
	}
	c.detail = updateSummary(p)
	j, err := s.createJob(ctx, store.JobUpdate, name, st.Metadata.UID, "", p)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusAccepted, body: j}, nil
}

// updateSummary says what a change does, for the audit log.
func updateSummary(p store.UpdateParams) string {
	var parts []string
	for _, e := range p.Plugins {
		parts = append(parts, "plugin "+e.Name+"@"+cmpOrLatest(e.Version))
	}
	for _, e := range p.Themes {
		parts = append(parts, "theme "+e.Name+"@"+cmpOrLatest(e.Version))
	}
	for _, n := range p.Remove {
		parts = append(parts, "remove "+n)
	}
	if p.CoreVersion != "" {
		parts = append(parts, "core "+p.CoreVersion)
	}
	if p.SkipStaging {
		parts = append(parts, "without staging")
	}
	return strings.Join(parts, ", ")
}

func cmpOrLatest(v string) string {
	if v == "" {
		return "latest"
	}
	return v
}

func (s *server) createFleetUpdate(c *call) (response, error) {
	ctx := c.r.Context()
	var req FleetUpdateRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	n := 0
	for _, set := range []bool{len(req.Sites) > 0, req.Org != "", req.WithPlugin != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return response{}, badRequest("give exactly one of sites, org and with_plugin")
	}
	p := store.FleetUpdateParams{Change: req.Change, Canary: req.Canary, WaveSize: req.WaveSize,
		MaxFailureRate: req.MaxFailureRate, Parallel: req.Parallel}
	rollout.FleetDefaults(&p)
	if err := rollout.CheckChange(p.Change); err != nil {
		return response{}, badRequest("change: %s", err.Error())
	}
	sites, err := s.fleetSites(ctx, req)
	if err != nil {
		return response{}, err
	}
	var bad []string
	for _, st := range sites {
		p.Sites = append(p.Sites, st.Metadata.Name)
		if err := s.checkUpdateChange(ctx, st, p.Change); err != nil {
			bad = append(bad, st.Metadata.Name+": "+err.Error())
		}
	}
	if len(bad) > 0 {
		more := ""
		if len(bad) > 5 {
			more = fmt.Sprintf(" (and %d more)", len(bad)-5)
			bad = bad[:5]
		}
		return response{}, badRequest("the change does not apply to every site: %s%s", strings.Join(bad, "; "), more)
	}
	if err := rollout.CheckFleet(p); err != nil {
		return response{}, badRequest("%s", err.Error())
	}
	c.detail = fmt.Sprintf("%s on %d site(s)", updateSummary(p.Change), len(p.Sites))
	j, err := s.createJob(ctx, store.JobFleetUpdate, "", "", "", p)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusAccepted, body: j}, nil
}

// fleetSites resolves a fleet update's selector to its sites: the listed
// ones (each must exist, be placed and not be a staging site), or every
// placed site (not being deleted, not a staging site) of the organisation
// or running the plugin, by name.
func (s *server) fleetSites(ctx context.Context, req FleetUpdateRequest) ([]*site.Site, error) {
	if len(req.Sites) > 0 {
		var out []*site.Site
		seen := map[string]bool{}
		for _, raw := range req.Sites {
			name, err := site.NormalizeDomain(raw)
			if err != nil {
				return nil, badRequest("sites: %q is not a domain", raw)
			}
			if seen[name] {
				return nil, badRequest("sites: %s is listed twice", name)
			}
			seen[name] = true
			st, err := s.cfg.Store.GetSite(ctx, name)
			if errors.Is(err, store.ErrNotFound) {
				return nil, badRequest("sites: site %q does not exist", name)
			}
			if err != nil {
				return nil, internal(fmt.Errorf("get site %q: %w", name, err))
			}
			if site.IsStaging(name) || st.Metadata.DeletionRequested != nil || st.Status.Shard == "" {
				return nil, badRequest("sites: site %q is a staging site, being deleted or not placed yet", name)
			}
			out = append(out, st)
		}
		return out, nil
	}
	if req.WithPlugin != "" && !site.ValidSlug(req.WithPlugin) {
		return nil, badRequest("with_plugin: %q is not a plugin slug", req.WithPlugin)
	}
	opts := store.ListOptions{Limit: store.MaxLimit}
	if req.Org != "" {
		if _, err := s.cfg.Store.GetOrg(ctx, req.Org); errors.Is(err, store.ErrNotFound) {
			return nil, badRequest("org: organisation %q does not exist", req.Org)
		} else if err != nil {
			return nil, internal(fmt.Errorf("get organisation %q: %w", req.Org, err))
		}
		opts.Orgs = []string{req.Org}
	}
	var out []*site.Site
	for {
		page, err := s.cfg.Store.ListSites(ctx, opts)
		if err != nil {
			return nil, internal(fmt.Errorf("list sites: %w", err))
		}
		for i := range page.Items {
			st := &page.Items[i]
			if site.IsStaging(st.Metadata.Name) || st.Metadata.DeletionRequested != nil || st.Status.Shard == "" {
				continue
			}
			if req.WithPlugin != "" && !runsPlugin(st, req.WithPlugin) {
				continue
			}
			out = append(out, st)
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	if len(out) == 0 {
		return nil, badRequest("no site matches the selector")
	}
	return out, nil
}

// runsPlugin reports whether a site's spec lists the plugin or its shard
// found it installed.
func runsPlugin(st *site.Site, name string) bool {
	has := func(list []site.Extension) bool {
		return slices.ContainsFunc(list, func(e site.Extension) bool { return e.Name == name })
	}
	if has(st.Spec.Plugins) {
		return true
	}
	if st.Status.Code != nil {
		return slices.ContainsFunc(st.Status.Code.Plugins, func(e site.InstalledExtension) bool { return e.Name == name })
	}
	return false
}
