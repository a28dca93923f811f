package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// This file is the one place that decides who may do what. A request's
// token becomes a principal (its platform role, the organisations it acts
// in and its role in each, or its machine role); every route names the
// permission it needs and where the organisation of its target comes from
// (its scope); decide answers allow, forbid (403) or hide (404: the caller
// may not know the target exists).

// perm is what a route needs.
type perm string

// Permissions. Org permissions apply inside an organisation (granted by an
// org role there, or by a platform role everywhere); platform permissions
// only come from platform roles.
const (
	permSiteRead    perm = "site.read"    // sites, their backups, jobs and WAF events
	permSiteWrite   perm = "site.write"   // create, change, delete, purge, back up, restore
	permSiteSuspend perm = "site.suspend" // suspend and resume
	permSecrets     perm = "site.secrets" // rotate a site's secrets
	permOrgRead     perm = "org.read"     // the organisation, its plan and usage
	permOrgWrite    perm = "org.write"    // its name, branding; delete it
	permOrgMembers  perm = "org.members"  // members, invitations, the org's tokens
	permOrgBilling  perm = "org.billing"  // its plan
	permOrgAudit    perm = "org.audit"    // its audit entries
	permOrgCreate   perm = "org.create"   // create organisations (under a partner)

	permPlatformRead perm = "platform.read" // shards, metrics, coverage, every audit entry
	permPlatformOps  perm = "platform.ops"  // shards, moves, jobs, backup verify/prune
	permPlatformAdm  perm = "platform.admin"

	permShard    perm = "machine.shard"     // a shard agent's routes
	permEdge     perm = "machine.edge"      // the routing table (edges, and admins to inspect it)
	permEdgeOnly perm = "machine.edge-only" // an edge's own certificate
	permAny      perm = "any"               // every valid token
	// permPeople: every valid token but a machine's (shard, edge): the
	// assistant and MCP act for a person, never for an agent.
	permPeople perm = "people"
	permPublic perm = "public" // no token needed
)

// scope says where a route's target organisation comes from.
type scope int

const (
	// scopePlatform: no organisation; platform permissions.
	scopePlatform scope = iota
	// scopeSite: the organisation of the site named by {name}; a site
	// the caller may not see is 404.
	scopeSite
	// scopeOrg: the organisation named by {org}.
	scopeOrg
	// scopeHandler: the handler finds the target (a list filtered to what
	// the caller may see, a body naming an organisation, a job or
	// snapshot's site) and calls call.allow.
	scopeHandler
	// scopeMachine: shard and edge routes, no organisation.
	scopeMachine
)

// platformGrants are what each platform role may do, in every
// organisation and on the platform.
var platformGrants = map[store.Role][]perm{
	store.RoleAdmin: {permSiteRead, permSiteWrite, permSiteSuspend, permSecrets, permOrgRead, permOrgWrite,
		permOrgMembers, permOrgBilling, permOrgAudit, permOrgCreate, permPlatformRead, permPlatformOps, permPlatformAdm,
		permEdge},
	store.RoleOperator: {permSiteRead, permOrgRead, permOrgAudit, permPlatformRead, permPlatformOps},
	store.RoleSupport:  {permSiteRead, permSiteSuspend, permOrgRead, permOrgAudit, permPlatformRead},
	store.RoleViewer:   {permSiteRead, permOrgRead, permOrgAudit, permPlatformRead},
	store.RoleShard:    {permShard},
	store.RoleEdge:     {permEdge, permEdgeOnly},
}

// orgGrants are what each organisation role may do inside its
// organisation (and, for a partner's members, inside the partner's
// organisations).
var orgGrants = map[store.OrgRole][]perm{
	store.OrgOwner: {permSiteRead, permSiteWrite, permSiteSuspend, permSecrets, permOrgRead, permOrgWrite,
		permOrgMembers, permOrgBilling, permOrgAudit},
	store.OrgDeveloper: {permSiteRead, permSiteWrite, permSiteSuspend, permSecrets, permOrgRead},
	store.OrgViewer:    {permSiteRead, permOrgRead},
	store.OrgBilling:   {permOrgRead, permOrgBilling},
}

// principal is who a request acts as.
type principal struct {
	token *store.Token
	user  *store.User // nil for machine and legacy tokens
	// platform is the platform or machine role ("" for customers).
	platform store.Role
	// orgs maps every organisation the caller acts in to its role there
	// (a partner's organisations included).
	orgs map[string]store.OrgRole
	// partners are the partner organisations whose members may create
	// organisations under them (owners of the partner).
	partners []string
}

// actor names the principal in logs and the audit log.
func (p *principal) actor() string { return p.token.ID }

// machine reports whether p is a shard's or an edge's token.
func (p *principal) machine() bool {
	return p.platform == store.RoleShard || p.platform == store.RoleEdge
}

// platformCan reports whether the platform role grants pm.
func (p *principal) platformCan(pm perm) bool {
	return slices.Contains(platformGrants[p.platform], pm)
}

// can reports whether p may use pm on org ("" for the platform itself).
func (p *principal) can(pm perm, org string) bool {
	if pm == permAny {
		return true
	}
	if pm == permPeople {
		return !p.machine()
	}
	if p.platformCan(pm) {
		return true
	}
	if org == "" {
		return false
	}
	role, ok := p.orgs[org]
	return ok && slices.Contains(orgGrants[role], pm)
}

// sees reports whether p may know that org exists (and what is in it).
func (p *principal) sees(org string) bool {
	if p.platformCan(permOrgRead) {
		return true
	}
	_, ok := p.orgs[org]
	return ok
}

// visibleOrgs returns the organisations whose content p may list with pm:
// nil for all of them (platform roles), else the list (possibly empty).
func (p *principal) visibleOrgs(pm perm) []string {
	if p.platformCan(pm) {
		return nil
	}
	out := []string{}
	for org, role := range p.orgs {
		if slices.Contains(orgGrants[role], pm) {
			out = append(out, org)
		}
	}
	slices.Sort(out)
	return out
}

// decision is decide's answer.
type decision int

const (
	allow decision = iota
	forbid
	hide
)

// decide is the authorization policy: may p use pm on a target in org
// ("" for platform-wide targets)? A caller that may not see org at all is
// told the target does not exist (hide); one that may see it but lacks pm
// is forbidden.
func decide(p *principal, pm perm, org string) decision {
	switch {
	case pm == permPublic || p.can(pm, org):
		return allow
	case org != "" && p.platform == "" && !p.sees(org):
		// Platform and machine tokens know organisations exist; a
		// customer does not learn of another's.
		return hide
	default:
		return forbid
	}
}

// errForbidden is the 403 of a denied call.
func errForbidden(c *call) error {
	return errorf(http.StatusForbidden, CodeForbidden, "token %q (%s) may not perform %s", c.who.actor(), c.who.describe(), c.action)
}

// describe names p's roles for error messages.
func (p *principal) describe() string {
	if p.platform != "" {
		return "role " + string(p.platform)
	}
	if p.token.Org != "" {
		return fmt.Sprintf("role %s in %s", p.token.Role, p.token.Org)
	}
	return "a member of " + fmt.Sprint(len(p.orgs)) + " organisations"
}

// loadPrincipal turns an authenticated token into its principal: a user's
// token is bounded by the user's current rights (removed from an
// organisation, the token loses it too).
func (s *server) loadPrincipal(ctx context.Context, tok *store.Token) (*principal, error) {
	p := &principal{token: tok, orgs: map[string]store.OrgRole{}}
	if tok.UserID == "" {
		// A machine or legacy token, or an organisation token an admin
		// made without a user.
		if tok.Org == "" {
			p.platform = tok.Role
			return p, nil
		}
		if err := s.addOrg(ctx, p, tok.Org, store.OrgRole(tok.Role)); err != nil {
			return nil, err
		}
		return p, nil
	}
	u, err := s.cfg.Store.GetUser(ctx, tok.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(http.StatusUnauthorized, CodeUnauthenticated, "invalid token")
	}
	if err != nil {
		return nil, internal(fmt.Errorf("load token's user: %w", err))
	}
	if u.Disabled {
		return nil, errorf(http.StatusUnauthorized, CodeUnauthenticated, "user %s is disabled", u.Email)
	}
	p.user = u
	ms, err := s.cfg.Store.ListMemberships(ctx, store.MembershipFilter{UserID: u.ID})
	if err != nil {
		return nil, internal(fmt.Errorf("load memberships: %w", err))
	}
	switch {
	case tok.Org != "":
		// An organisation token: that organisation only (and, for a
		// partner, its organisations), at most the user's role there
		// (directly or through a partner).
		all := &principal{token: tok, orgs: map[string]store.OrgRole{}}
		for _, m := range ms {
			if err := s.addOrg(ctx, all, m.Org, m.Role); err != nil {
				return nil, err
			}
		}
		if r, ok := narrowOrgRole(store.OrgRole(tok.Role), all.orgs[tok.Org]); ok {
			if err := s.addOrg(ctx, p, tok.Org, r); err != nil {
				return nil, err
			}
		}
	case tok.Role == store.RoleUser:
		// A session or sign-in token: everything the user may do.
		p.platform = u.PlatformRole
		for _, m := range ms {
			if err := s.addOrg(ctx, p, m.Org, m.Role); err != nil {
				return nil, err
			}
		}
	default:
		// A platform token of a user: that platform role, if the user
		// still holds it.
		if platformRoleWithin(tok.Role, u.PlatformRole) {
			p.platform = tok.Role
		}
	}
	return p, nil
}

// addOrg gives p role in org and, when org is a partner, in each of the
// partner's organisations; owners of a partner may create organisations
// under it.
func (s *server) addOrg(ctx context.Context, p *principal, org string, role store.OrgRole) error {
	o, err := s.cfg.Store.GetOrg(ctx, org)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return internal(fmt.Errorf("load organisation %q: %w", org, err))
	}
	p.orgs[org] = strongerOrgRole(p.orgs[org], role)
	if o.Kind != store.OrgPartner {
		return nil
	}
	if role == store.OrgOwner {
		p.partners = append(p.partners, org)
	}
	cont := ""
	for {
		l, err := s.cfg.Store.ListOrgs(ctx, store.OrgListOptions{Partner: org, Limit: store.MaxLimit, Continue: cont})
		if err != nil {
			return internal(fmt.Errorf("list organisations of partner %q: %w", org, err))
		}
		for _, child := range l.Items {
			p.orgs[child.Name] = strongerOrgRole(p.orgs[child.Name], role)
		}
		if l.Continue == "" {
			return nil
		}
		cont = l.Continue
	}
}

// orgRank orders the roles that include one another (billing stands apart).
var orgRank = map[store.OrgRole]int{store.OrgViewer: 1, store.OrgDeveloper: 2, store.OrgOwner: 3}

// strongerOrgRole returns the role granting more of a and b ("" for none).
func strongerOrgRole(a, b store.OrgRole) store.OrgRole {
	if a == "" || orgRank[b] > orgRank[a] {
		return b
	}
	return a
}

// narrowOrgRole returns what a token with role want gets from a user whose
// role is have: want itself if have includes it.
func narrowOrgRole(want, have store.OrgRole) (store.OrgRole, bool) {
	switch {
	case want == have, have == store.OrgOwner && orgGrants[want] != nil:
		return want, true
	case orgRank[want] > 0 && orgRank[want] <= orgRank[have]:
		return want, true
	}
	return "", false
}

// platformRoleWithin reports whether a token of role want may act for a
// user whose platform role is have.
func platformRoleWithin(want, have store.Role) bool {
	switch {
	case have == "" || want == "":
		return false
	case want == have, have == store.RoleAdmin:
		return slices.Contains([]store.Role{store.RoleAdmin, store.RoleOperator, store.RoleSupport, store.RoleViewer}, want)
	case want == store.RoleViewer:
		return have == store.RoleOperator || have == store.RoleSupport
	}
	return false
}

// allow checks the route's permission on a target in org, for handlers of
// scopeHandler routes; what may not be seen is reported as notFound.
func (c *call) allow(org string, notFound error) error {
	switch decide(c.who, c.perm, org) {
	case allow:
		c.org = org
		return nil
	case hide:
		return notFound
	default:
		return errForbidden(c)
	}
}

// allowSite checks the route's permission on the site named name (404
// when the caller may not see it, as when it does not exist).
func (s *server) allowSite(c *call, name string) (*site.Site, error) {
	st, err := s.cfg.Store.GetSite(c.r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, siteNotFound(name)
	}
	if err != nil {
		return nil, internal(fmt.Errorf("get site %q: %w", name, err))
	}
	if err := c.allow(st.Metadata.Org, siteNotFound(name)); err != nil {
		return nil, err
	}
	return st, nil
}

// authorizeRoute applies rt's permission and scope before its handler runs.
func (s *server) authorizeRoute(c *call, rt route) error {
	p := c.who
	switch rt.Scope {
	case scopeMachine:
		if !p.platformCan(rt.Perm) {
			return errForbidden(c)
		}
		if p.platform == store.RoleShard && p.token.Subject == "" {
			return errorf(http.StatusForbidden, CodeForbidden, "token %q (role shard) names no shard", p.token.ID)
		}
		return nil
	case scopeSite:
		name, err := siteName(c)
		if err != nil {
			return err
		}
		_, err = s.allowSite(c, name)
		return err
	case scopeOrg:
		org := c.r.PathValue("org")
		return c.allow(org, orgNotFound(org))
	case scopeHandler:
		// The handler checks the targets it finds; here only callers
		// who act in no organisation and lack the permission platform-
		// wide are refused (so that an organisation member learns
		// nothing of other organisations' targets from a 403).
		if p.can(rt.Perm, "") || (len(p.orgs) > 0 && !p.machine()) {
			return nil
		}
		return errForbidden(c)
	default: // scopePlatform
		if decide(p, rt.Perm, "") != allow {
			return errForbidden(c)
		}
		return nil
	}
}

func orgNotFound(name string) error {
	return errorf(http.StatusNotFound, CodeNotFound, "organisation %q not found", name)
}

// newSiteOrg resolves the organisation a new site will belong to (org, or
// the caller's only organisation, or DefaultOrg for platform tokens) and
// checks that the caller may create sites there.
func (s *server) newSiteOrg(c *call, org string) (string, error) {
	if org == "" {
		switch vis := c.who.visibleOrgs(permSiteWrite); len(vis) {
		case 0:
			if vis == nil {
				org = store.DefaultOrg
			}
		case 1:
			org = vis[0]
		default:
			return "", badRequest("name the organisation that will own the site (org); you may create sites in %s",
				strings.Join(vis, ", "))
		}
	}
	if org == "" {
		return "", errForbidden(c)
	}
	if err := c.allow(org, orgNotFound(org)); err != nil {
		return "", err
	}
	if _, err := s.cfg.Store.GetOrg(c.r.Context(), org); errors.Is(err, store.ErrNotFound) {
		return "", orgNotFound(org)
	} else if err != nil {
		return "", internal(fmt.Errorf("get organisation %q: %w", org, err))
	}
	return org, nil
}

// siteFilter is the ?site= of lists that customers may only read one site
// at a time (backups, jobs): it checks the caller may read that site, and
// requires one from callers who may not read every site.
//
// It returns the UID items must have to be shown ("" for every item): a
// customer sees the history of the site it owns now, not of an older site
// that had the same name.
func (s *server) siteFilter(c *call, name string) (uid string, err error) {
	if c.who.visibleOrgs(c.perm) == nil {
		return "", nil
	}
	if name == "" {
		return "", badRequest("name the site: ?site=<domain>")
	}
	st, err := s.allowSite(c, name)
	if err != nil {
		return "", err
	}
	return st.Metadata.UID, nil
}

// allowSiteUID checks the route's permission on the site a job or snapshot
// belongs to (name and uid); when that site is gone, or the name now
// belongs to another site, only platform roles see it, and others get
// notFound.
func (s *server) allowSiteUID(c *call, name, uid string, notFound error) error {
	st, err := s.cfg.Store.GetSite(c.r.Context(), name)
	gone := errors.Is(err, store.ErrNotFound) || (err == nil && uid != "" && st.Metadata.UID != uid)
	if err != nil && !gone {
		return internal(fmt.Errorf("get site %q: %w", name, err))
	}
	if c.who.platformCan(c.perm) {
		if !gone {
			c.org = st.Metadata.Org // for the audit log
		}
		return nil
	}
	if gone {
		return notFound
	}
	return c.allow(st.Metadata.Org, notFound)
}

// orgNameFree refuses the name of an organisation that existed before:
// its audit entries are filed under that name, and a new organisation of
// the same name must not read them.
// (Failed calls naming an organisation that never existed do not count:
// anyone could make those.)
func (s *server) orgNameFree(ctx context.Context, name string) error {
	after := int64(0)
	for {
		page, err := s.cfg.Store.ListAudit(ctx, store.AuditListOptions{Org: name, AfterSeq: after, Limit: store.MaxLimit})
		if err != nil {
			return internal(fmt.Errorf("audit entries of organisation %q: %w", name, err))
		}
		for _, e := range page {
			if e.Outcome == "success" {
				return errorf(http.StatusConflict, CodeAlreadyExists, "organisation name %q was used before; choose another", name)
			}
			after = e.Seq
		}
		if len(page) < store.MaxLimit {
			return nil
		}
	}
}
