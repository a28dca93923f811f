package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/store"
)

// Organisations: list, create, show (with plan usage), change, delete.
// Who may do what is in the routes table and authz.go; the handlers here
// refine it where one route serves several roles (PATCH: the fields each
// role may change; POST: partners' owners create under their partner).

// CreateOrgRequest is the body of POST /v1/orgs.
type CreateOrgRequest struct {
	// Name is the organisation's identifier: 1-63 lowercase letters,
	// digits or '-', starting with a letter; immutable.
	Name        string `json:"name"`
	DisplayName string `json:"display_name,omitempty"`
	// Kind is customer (default) or partner (platform admins only).
	Kind store.OrgKind `json:"kind,omitempty"`
	// Partner is the partner organisation that owns the new one. Owners
	// of a partner create organisations only under it (it is filled in
	// when they own one partner).
	Partner  string         `json:"partner,omitempty"`
	Plan     string         `json:"plan,omitempty"` // default DefaultPlan
	Branding store.Branding `json:"branding"`
}

// UpdateOrgRequest is the body of PATCH /v1/orgs/{org}: the fields that
// are set change. Display name and branding: owners; plan: owners and
// billing; partner: platform admins.
type UpdateOrgRequest struct {
	DisplayName *string         `json:"display_name,omitempty"`
	Branding    *store.Branding `json:"branding,omitempty"`
	Plan        *string         `json:"plan,omitempty"`
	// Partner moves the organisation under another partner ("" : none).
	Partner *string `json:"partner,omitempty"`
	// Kind cannot change; it is accepted only to say so clearly.
	Kind *store.OrgKind `json:"kind,omitempty"`
}

// OrgView is an organisation as GET /v1/orgs/{org} shows it: the
// organisation, what it uses of its plan's quotas (api.OrgUsage) and, a
// partner, how many organisations it owns.
type OrgView struct {
	store.Org
	Quotas plans.Usage `json:"quotas"`
	Orgs   *int        `json:"orgs,omitempty"`
}

// OrgList is the body of GET /v1/orgs.
type OrgList = store.OrgList

func orgName(c *call) string {
	org := c.r.PathValue("org")
	c.target = org
	c.org = org
	return org
}

// pageParams reads ?limit= and ?continue=.
func pageParams(c *call) (limit int, cont string, err error) {
	q := c.r.URL.Query()
	limit = DefaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListLimit {
			return 0, "", badRequest("limit must be an integer between 1 and %d, got %q", MaxListLimit, v)
		}
		limit = n
	}
	return limit, q.Get("continue"), nil
}

func (s *server) listOrgs(c *call) (response, error) {
	limit, cont, err := pageParams(c)
	if err != nil {
		return response{}, err
	}
	opts := store.OrgListOptions{Names: c.who.visibleOrgs(permOrgRead), Partner: c.r.URL.Query().Get("partner"),
		Limit: limit, Continue: cont}
	list, err := s.cfg.Store.ListOrgs(c.r.Context(), opts)
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return response{}, badRequest("invalid continue token %q", cont)
		}
		return response{}, internal(fmt.Errorf("list organisations: %w", err))
	}
	if list.Items == nil {
		list.Items = []store.Org{}
	}
	return response{status: http.StatusOK, body: list}, nil
}

// loadOrg returns the organisation (404 when unknown).
func (s *server) loadOrg(ctx context.Context, name string) (*store.Org, error) {
	o, err := s.cfg.Store.GetOrg(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, orgNotFound(name)
	}
	if err != nil {
		return nil, internal(fmt.Errorf("get organisation %q: %w", name, err))
	}
	return o, nil
}

func (s *server) getOrg(c *call) (response, error) {
	name := orgName(c)
	o, err := s.loadOrg(c.r.Context(), name)
	if err != nil {
		return response{}, err
	}
	v, err := s.orgView(c.r.Context(), o)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusOK, body: v}, nil
}

// orgView is o with its quotas and, a partner, its organisations.
func (s *server) orgView(ctx context.Context, o *store.Org) (*OrgView, error) {
	u, err := OrgUsage(ctx, s.cfg.Store, s.plans(), *o, s.cfg.Clock())
	if err != nil {
		return nil, internal(fmt.Errorf("usage of %q: %w", o.Name, err))
	}
	v := &OrgView{Org: *o, Quotas: u}
	if o.Kind == store.OrgPartner {
		n, err := s.countPartnerOrgs(ctx, o.Name)
		if err != nil {
			return nil, err
		}
		v.Orgs = &n
	}
	return v, nil
}

func (s *server) countPartnerOrgs(ctx context.Context, partner string) (int, error) {
	n, cont := 0, ""
	for {
		l, err := s.cfg.Store.ListOrgs(ctx, store.OrgListOptions{Partner: partner, Limit: store.MaxLimit, Continue: cont})
		if err != nil {
			return 0, internal(fmt.Errorf("list organisations of %q: %w", partner, err))
		}
		n += len(l.Items)
		if l.Continue == "" {
			return n, nil
		}
		cont = l.Continue
	}
}

// checkPlan refuses a plan the platform does not offer.
func (s *server) checkPlan(name string) error {
	if _, ok := s.plans().Get(name); !ok {
		return badRequest("unknown plan %q; plans are %s", name, strings.Join(s.plans().Names(), ", "))
	}
	return nil
}

// checkOrgPlan checks that organisation org may move to plan: a known
// plan whose max_sites holds the organisation's sites and which allows
// each of their plans (403 quota_exceeded otherwise, as plans.Set.Check
// says).
func (s *server) checkOrgPlan(ctx context.Context, org, plan string) error {
	if err := s.checkPlan(plan); err != nil {
		return err
	}
	sites, err := orgSites(ctx, s.cfg.Store, org)
	if err != nil {
		return internal(err)
	}
	if p, _ := s.plans().Get(plan); p.MaxSites > 0 && len(sites) > p.MaxSites {
		return errorf(http.StatusForbidden, CodeQuotaExceeded, "organisation %s has %d sites; plan %s allows %d: delete sites first",
			org, len(sites), plan, p.MaxSites)
	}
	for i := range sites {
		err := s.plans().Check(plans.Org{Name: org, Plan: plan, Sites: len(sites)},
			plans.Change{Site: sites[i].Metadata.Name, Plan: sites[i].Spec.Plan})
		var qe *plans.QuotaError
		if errors.As(err, &qe) {
			return errorf(http.StatusForbidden, CodeQuotaExceeded, "site %s is on plan %s: %s", sites[i].Metadata.Name,
				sites[i].Spec.Plan, qe.Msg)
		}
	}
	return nil
}

// validateBranding checks an organisation's white-label fields.
func validateBranding(b store.Branding) error {
	if err := plans.ValidateBranding(b); err != nil {
		return badRequest("%v", err)
	}
	return nil
}

func validateDisplayName(n string) error {
	if len(n) > 200 || !plainText(n) {
		return badRequest("display_name: at most 200 characters, no control characters")
	}
	return nil
}

func (req *CreateOrgRequest) validate(s *server) error {
	if !store.ValidOrgName(req.Name) {
		return badRequest("name %q: use 1-63 lowercase letters, digits or '-', starting with a letter", req.Name)
	}
	if req.Kind == "" {
		req.Kind = store.OrgCustomer
	}
	if req.Kind != store.OrgCustomer && req.Kind != store.OrgPartner {
		return badRequest("kind must be customer or partner, got %q", req.Kind)
	}
	if req.Kind == store.OrgPartner && req.Partner != "" {
		return badRequest("a partner organisation cannot belong to a partner")
	}
	if req.Plan == "" {
		req.Plan = s.plans().Default().Name
	}
	if err := s.checkPlan(req.Plan); err != nil {
		return err
	}
	if err := validateDisplayName(req.DisplayName); err != nil {
		return err
	}
	return validateBranding(req.Branding)
}

// allowNewOrg checks that the caller may create req: platform admins any
// organisation; owners of a partner customer organisations under their
// partner (filled in when they own exactly one).
func (c *call) allowNewOrg(req *CreateOrgRequest) error {
	p := c.who
	if p.platformCan(permOrgCreate) {
		return nil
	}
	if req.Kind == store.OrgPartner {
		return errorf(http.StatusForbidden, CodeForbidden, "only platform admins create partner organisations")
	}
	if req.Partner == "" {
		switch len(p.partners) {
		case 0:
			return errorf(http.StatusForbidden, CodeForbidden,
				"only platform admins and owners of a partner organisation create organisations")
		case 1:
			req.Partner = p.partners[0]
		default:
			return badRequest("name the partner the organisation will belong to (partner); you own %s",
				strings.Join(p.partners, ", "))
		}
	}
	if slices.Contains(p.partners, req.Partner) {
		return nil
	}
	if !p.sees(req.Partner) {
		return orgNotFound(req.Partner)
	}
	return errorf(http.StatusForbidden, CodeForbidden, "only owners of partner %q create organisations under it", req.Partner)
}

func (s *server) createOrg(c *call) (response, error) {
	var req CreateOrgRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	c.target = req.Name
	if err := req.validate(s); err != nil {
		return response{}, err
	}
	if err := c.allowNewOrg(&req); err != nil {
		return response{}, err
	}
	ctx := c.r.Context()
	if req.Partner != "" {
		if _, err := s.loadOrg(ctx, req.Partner); err != nil {
			return response{}, err
		}
	}
	if err := s.orgNameFree(ctx, req.Name); err != nil {
		return response{}, err
	}
	o := &store.Org{Name: req.Name, DisplayName: req.DisplayName, Kind: req.Kind, Partner: req.Partner, Plan: req.Plan,
		Branding: req.Branding, CreatedAt: s.cfg.Clock().UTC()}
	err := s.cfg.Store.CreateOrg(ctx, o)
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		return response{}, errorf(http.StatusConflict, CodeAlreadyExists, "organisation %q already exists", req.Name)
	case errors.Is(err, store.ErrInvalid):
		return response{}, badRequest("%v", err)
	case err != nil:
		return response{}, internal(fmt.Errorf("create organisation %q: %w", req.Name, err))
	}
	c.org = req.Name // recorded only once it exists
	c.detail = "kind " + string(o.Kind) + ", plan " + o.Plan
	if o.Partner != "" {
		c.detail += ", partner " + o.Partner
	}
	return response{status: http.StatusCreated, body: o}, nil
}

func (s *server) patchOrg(c *call) (response, error) {
	name := orgName(c)
	var req UpdateOrgRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	p := c.who
	need := func(pm perm, what string) error {
		if !p.can(pm, name) {
			return errorf(http.StatusForbidden, CodeForbidden, "token %q (%s) may not change %s of organisation %q",
				p.actor(), p.describe(), what, name)
		}
		return nil
	}
	var changes []string
	if req.DisplayName != nil {
		if err := need(permOrgWrite, "the display name"); err != nil {
			return response{}, err
		}
		if err := validateDisplayName(*req.DisplayName); err != nil {
			return response{}, err
		}
		changes = append(changes, "display_name")
	}
	if req.Branding != nil {
		if err := need(permOrgWrite, "the branding"); err != nil {
			return response{}, err
		}
		if err := validateBranding(*req.Branding); err != nil {
			return response{}, err
		}
		changes = append(changes, "branding")
	}
	if req.Plan != nil {
		if err := need(permOrgBilling, "the plan"); err != nil {
			return response{}, err
		}
		if err := s.checkOrgPlan(c.r.Context(), name, *req.Plan); err != nil {
			return response{}, err
		}
		changes = append(changes, "plan "+*req.Plan)
	}
	if req.Partner != nil {
		if err := need(permPlatformAdm, "the partner"); err != nil {
			return response{}, err
		}
		if *req.Partner != "" {
			if _, err := s.loadOrg(c.r.Context(), *req.Partner); err != nil {
				return response{}, err
			}
		}
		changes = append(changes, "partner "+cmp.Or(*req.Partner, `""`))
	}
	o, err := s.cfg.Store.UpdateOrg(c.r.Context(), name, func(o *store.Org) error {
		if req.Kind != nil && *req.Kind != o.Kind {
			return badRequest("an organisation's kind cannot change (it is %s); create a new organisation", o.Kind)
		}
		if req.DisplayName != nil {
			o.DisplayName = *req.DisplayName
		}
		if req.Branding != nil {
			o.Branding = *req.Branding
		}
		if req.Plan != nil {
			o.Plan = *req.Plan
		}
		if req.Partner != nil {
			o.Partner = *req.Partner
		}
		return nil
	})
	var he HTTPError
	switch {
	case errors.As(err, &he):
		return response{}, he
	case errors.Is(err, store.ErrNotFound):
		return response{}, orgNotFound(name)
	case errors.Is(err, store.ErrInvalid):
		return response{}, badRequest("%v", err)
	case err != nil:
		return response{}, internal(fmt.Errorf("update organisation %q: %w", name, err))
	}
	c.detail = strings.Join(changes, ", ")
	v, err := s.orgView(c.r.Context(), o)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusOK, body: v}, nil
}

func (s *server) deleteOrg(c *call) (response, error) {
	name := orgName(c)
	ctx := c.r.Context()
	o, err := s.loadOrg(ctx, name)
	if err != nil {
		return response{}, err
	}
	if name == store.DefaultOrg {
		return response{}, conflict("organisation %q cannot be deleted: sites created without an organisation go there", name)
	}
	n, err := s.cfg.Store.CountSites(ctx, name)
	if err != nil {
		return response{}, internal(fmt.Errorf("count sites of %q: %w", name, err))
	}
	if n > 0 {
		return response{}, conflict("organisation %q owns %d sites; delete them first", name, n)
	}
	if o.Kind == store.OrgPartner {
		k, err := s.countPartnerOrgs(ctx, name)
		if err != nil {
			return response{}, err
		}
		if k > 0 {
			return response{}, conflict("partner %q owns %d organisations; delete them or move them to another partner first", name, k)
		}
	}
	err = s.cfg.Store.DeleteOrg(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return response{}, orgNotFound(name)
	case errors.Is(err, store.ErrConflict):
		// A site or organisation arrived meanwhile.
		return response{}, conflict("organisation %q still owns sites or organisations; delete them first", name)
	case err != nil:
		return response{}, internal(fmt.Errorf("delete organisation %q: %w", name, err))
	}
	return response{status: http.StatusNoContent}, nil
}
