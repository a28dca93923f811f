package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// CodeQuotaExceeded (403): the organisation's or the site's plan does not
// allow the change; the message names the plan, the limit and the use.
const CodeQuotaExceeded = "quota_exceeded"

// plans is the API's plan set (Config.Plans, default plans.Defaults()).
func (s *server) plans() *plans.Set { return s.cfg.Plans }

// siteOrg is the organisation that owns st (store.DefaultOrg for sites
// from before organisations).
func siteOrg(st *site.Site) string {
	if st.Metadata.Org == "" {
		return store.DefaultOrg
	}
	return st.Metadata.Org
}

// quotaOrg returns what a quota check needs of organisation name: its plan
// and, with count, how many sites it has.
func quotaOrg(ctx context.Context, st store.Store, name string, count bool) (plans.Org, error) {
	org := plans.Org{Name: name}
	o, err := st.GetOrg(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// The authorization layer decides whether a missing
		// organisation may own sites; its quota is none.
	case err != nil:
		return org, fmt.Errorf("get organisation %q: %w", name, err)
	default:
		org.Plan = o.Plan
	}
	if !count || org.Plan == "" {
		return org, nil
	}
	if org.Sites, err = st.CountSites(ctx, name); err != nil {
		return org, fmt.Errorf("count the sites of organisation %q: %w", name, err)
	}
	return org, nil
}

// orgSites lists the sites organisation name owns (deleted ones too,
// until they are gone: they still hold their resources).
func orgSites(ctx context.Context, st store.Store, name string) ([]site.Site, error) {
	var out []site.Site
	opts := store.ListOptions{Limit: store.MaxLimit, Orgs: []string{name}}
	for {
		page, err := st.ListSites(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list the sites of organisation %q: %w", name, err)
		}
		for i := range page.Items {
			if siteOrg(&page.Items[i]) == name {
				out = append(out, page.Items[i])
			}
		}
		if page.Continue == "" {
			return out, nil
		}
		opts.Continue = page.Continue
	}
}

// checkQuota is the one place the API enforces plans: creating site st
// (newSite) or moving it to plan. It answers 403 quota_exceeded with the
// plan's message, 400 for an unknown plan.
func (s *server) checkQuota(ctx context.Context, st *site.Site, plan string, newSite bool) error {
	org, err := quotaOrg(ctx, s.cfg.Store, siteOrg(st), newSite)
	if err != nil {
		return internal(err)
	}
	change := plans.Change{New: newSite, Site: st.Metadata.Name, Plan: plan}
	if !newSite {
		change.UsedDiskMB = st.Status.DiskUsedMB
	}
	err = s.plans().Check(org, change)
	var qe *plans.QuotaError
	switch {
	case errors.As(err, &qe):
		return errorf(http.StatusForbidden, CodeQuotaExceeded, "%s", qe.Msg)
	case err != nil:
		return badRequest("%v", err)
	}
	return nil
}

// OrgUsage computes what organisation org uses of its plan at now: its
// sites, their disk (as their shards measured it last) and this month's
// bandwidth. The organisation handlers put it in GET /v1/orgs/{name}
// ("quotas").
func OrgUsage(ctx context.Context, st store.Store, ps *plans.Set, org store.Org, now time.Time) (plans.Usage, error) {
	sites, err := orgSites(ctx, st, org.Name)
	if err != nil {
		return plans.Usage{}, err
	}
	month := plans.Month(now)
	facts := make([]plans.SiteFacts, 0, len(sites))
	names := make([]string, 0, len(sites))
	for i := range sites {
		names = append(names, sites[i].Metadata.Name)
	}
	used, err := siteBandwidth(ctx, st, month, names)
	if err != nil {
		return plans.Usage{}, err
	}
	for i := range sites {
		s := &sites[i]
		facts = append(facts, plans.SiteFacts{Name: s.Metadata.Name, Plan: s.Spec.Plan, DiskUsedMB: s.Status.DiskUsedMB,
			BandwidthBytes: used[s.Metadata.Name]})
	}
	return ps.Usage(plans.Org{Name: org.Name, Plan: org.Plan, Sites: len(sites)}, month, facts), nil
}

// siteBandwidth returns what sites sent in month, by name.
func siteBandwidth(ctx context.Context, st store.Store, month string, sites []string) (map[string]int64, error) {
	used, err := st.ListBandwidth(ctx, store.BandwidthListOptions{Month: month, Sites: sites})
	if err != nil {
		return nil, fmt.Errorf("bandwidth of %s: %w", month, err)
	}
	return used, nil
}

// planChange checks that the site of call c may move to plan name
// (checkQuota; the current plan is always allowed, to apply its resources
// again) and returns the plan.
func (s *server) planChange(c *call, siteName, name string) (plans.Plan, error) {
	p, ok := s.plans().Get(name)
	if !ok {
		return p, badRequest("unknown plan %q; plans are %s", name, strings.Join(s.plans().Names(), ", "))
	}
	st, err := s.cfg.Store.GetSite(c.r.Context(), siteName)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return p, siteNotFound(siteName)
	case err != nil:
		return p, internal(fmt.Errorf("get site %q: %w", siteName, err))
	}
	if st.Spec.Plan == name {
		return p, nil
	}
	return p, s.checkQuota(c.r.Context(), st, name, false)
}
