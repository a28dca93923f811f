package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/wordpress"
)

// Creation defaults.
const (
	DefaultAdminUser = "admin"
	// PasswordLength is the length of generated admin passwords.
	PasswordLength = 24
	// adminHashLog2: the generated admin password is hashed in WordPress's
	// own portable format ($P$, phpass) with its least number of rounds,
	// 2^7. A slow hash protects guessable passwords; a generated one of
	// PasswordLength characters from 62 has ≈ 143 bits of entropy, out of
	// reach at any cost, while bcrypt at its least cost still spent 1.4 ms
	// of CPU on every create (a quarter of the server's CPU per created
	// site in bench/scale; cost 10 was ≈ 70 ms). Passwords an admin later
	// sets are hashed by WordPress; 6.8 and later rehash this one to
	// bcrypt at the first sign-in.
	adminHashLog2 = wordpress.PortableMinLog2
	maxBodyBytes  = 1 << 20
)

// DefaultCache is the page-cache policy of new sites.
var DefaultCache = site.Cache{TTLSeconds: 300}

// CreateSiteRequest is the body of POST /v1/sites.
type CreateSiteRequest struct {
	Domain      string            `json:"domain"`
	Title       string            `json:"title"`
	AdminUser   string            `json:"admin_user,omitempty"`   // default "admin"
	AdminEmail  string            `json:"admin_email"`            // required
	Plan        string            `json:"plan,omitempty"`         // default: the plans' default (basic)
	CoreVersion string            `json:"core_version,omitempty"` // default: the shard's
	Labels      map[string]string `json:"labels,omitempty"`
	// Org is the organisation that will own the site. Default: the
	// caller's only organisation, or "default" for platform tokens.
	Org string `json:"org,omitempty"`
	// Plugins, Themes, Options and Constants are the site's code
	// (site.Spec; checked by ValidateCode; an upload source must be an
	// artefact uploaded to the site's organisation). When any is given, a
	// code job (store.JobCode) applies them once WordPress is installed:
	// the response names it (code_job).
	Plugins   []site.Extension  `json:"plugins,omitempty"`
	Themes    []site.Extension  `json:"themes,omitempty"`
	Options   map[string]string `json:"options,omitempty"`
	Constants map[string]string `json:"constants,omitempty"`
}

// CreateSiteResponse is the 201 body of POST /v1/sites. It is the only
// place the admin password is ever shown.
type CreateSiteResponse struct {
	Domain        string     `json:"domain"`
	URL           string     `json:"url"`
	Status        site.Phase `json:"status"`
	Shard         string     `json:"shard"`
	AdminUser     string     `json:"admin_user"`
	AdminPassword string     `json:"admin_password"`
	Site          *site.Site `json:"site"`
	// CodeJob is the code job that installs the site's plugins and themes
	// and sets its options (nil when the request named none).
	CodeJob *store.Job `json:"code_job,omitempty"`
}

// WhoAmIResponse is the body of GET /v1/whoami.
type WhoAmIResponse struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Role    store.Role `json:"role"`
	Subject string     `json:"subject,omitempty"` // the shard of a shard token
	Version string     `json:"version,omitempty"` // server version
	// Org is an organisation token's organisation.
	Org string `json:"org,omitempty"`
	// User is the user the token acts for, if any.
	User *store.User `json:"user,omitempty"`
	// PlatformRole is what the caller may do on the whole platform.
	PlatformRole store.Role `json:"platform_role,omitempty"`
	// Orgs are the organisations the caller acts in, with its role in
	// each (a partner's organisations included).
	Orgs map[string]store.OrgRole `json:"orgs,omitempty"`
}

var (
	adminUserRE   = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,60}$`)
	coreVersionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,3}$`)
	labelKeyRE    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_./-]{0,61}[A-Za-z0-9])?$`)
)

// redact returns a copy of s safe to serve: without the password hash.
func redact(s *site.Site) *site.Site {
	c := *s
	c.Spec.Admin.PasswordHash = ""
	return &c
}

// forEdge is what an edge needs of a site to route it (edge.RouteForSite,
// cache purges on re-creation), and nothing else: an edge's first list of
// 50,000 sites stays a few tens of megabytes, and no admin data reaches it.
func forEdge(s *site.Site) *site.Site {
	c := site.Site{
		Metadata: site.Metadata{Name: s.Metadata.Name, UID: s.Metadata.UID, Generation: s.Metadata.Generation,
			ResourceVersion: s.Metadata.ResourceVersion, DeletionRequested: s.Metadata.DeletionRequested},
		Spec: site.Spec{Domain: s.Spec.Domain, Suspended: s.Spec.Suspended, Cache: s.Spec.Cache, WAF: s.Spec.WAF,
			HTTPSRedirect: s.Spec.HTTPSRedirect},
		Status: site.Status{Phase: s.Status.Phase, Shard: s.Status.Shard, Endpoint: s.Status.Endpoint,
			Docroot: s.Status.Docroot},
		Move: s.Move,
	}
	if m := s.Status.Condition(site.CondMaintenance); m != nil {
		c.Status.Conditions = []site.Condition{*m}
	}
	return &c
}

// siteName normalises a {name} path value; names that are not valid domains
// cannot exist, so they are reported as not found.
func siteName(c *call) (string, error) {
	raw := c.r.PathValue("name")
	name, err := site.NormalizeDomain(raw)
	if err != nil {
		return "", siteNotFound(raw)
	}
	c.target = name
	return name, nil
}

func (s *server) listSites(c *call) (response, error) {
	q := c.r.URL.Query()
	limit := DefaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListLimit {
			return response{}, badRequest("limit must be an integer between 1 and %d, got %q", MaxListLimit, v)
		}
		limit = n
	}
	opts := store.ListOptions{Limit: limit, Continue: q.Get("continue"), Orgs: c.who.visibleOrgs(permSiteRead)}
	if err := s.listSitesFilters(c, &opts); err != nil {
		return response{}, err
	}
	list, err := s.cfg.Store.ListSites(c.r.Context(), opts)
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return response{}, badRequest("invalid continue token %q", q.Get("continue"))
		}
		return response{}, internal(fmt.Errorf("list sites: %w", err))
	}
	sums, err := s.summaries(c.r.Context(), list.Items)
	if err != nil {
		return response{}, internal(err)
	}
	out := SiteListResponse{Items: make([]SiteListItem, 0, len(list.Items)), Continue: list.Continue, Revision: list.Revision}
	for i := range list.Items {
		out.Items = append(out.Items, SiteListItem{Site: *redact(&list.Items[i]), Summary: sums[i]})
	}
	return response{status: http.StatusOK, body: out}, nil
}

func (s *server) getSite(c *call) (response, error) {
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	st, err := s.cfg.Store.GetSite(c.r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, siteNotFound(name)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("get site %q: %w", name, err))
	}
	return response{status: http.StatusOK, body: redact(st)}, nil
}

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("invalid JSON body: trailing data")
	}
	return nil
}

// validateCreate checks and defaults req in place.
func validateCreate(req *CreateSiteRequest, ps *plans.Set) error {
	domain, err := site.NormalizeDomain(req.Domain)
	if err != nil {
		return HTTPError{Status: http.StatusBadRequest, Code: CodeInvalidDomain, Msg: err.Error()}
	}
	if err := notStaging(domain); err != nil {
		return err
	}
	req.Domain = domain
	if req.Title == "" {
		return badRequest("title is required")
	}
	if len(req.Title) > 200 {
		return badRequest("title is longer than 200 characters")
	}
	if !plainText(req.Title) {
		return badRequest("title must not contain control characters (line breaks, tabs, NUL …)")
	}
	if req.AdminUser == "" {
		req.AdminUser = DefaultAdminUser
	}
	if !adminUserRE.MatchString(req.AdminUser) {
		return badRequest("admin_user %q: use 1-60 letters, digits, '_', '.', '@' or '-'", req.AdminUser)
	}
	if req.AdminEmail == "" {
		return badRequest("admin_email is required")
	}
	addr, err := mail.ParseAddress(req.AdminEmail)
	if err != nil || addr.Name != "" || !bareAddress(addr.Address) {
		return badRequest("admin_email %q is not a valid e-mail address", req.AdminEmail)
	}
	req.AdminEmail = addr.Address
	if req.Plan == "" {
		req.Plan = ps.Default().Name
	}
	if _, ok := ps.Get(req.Plan); !ok {
		return badRequest("unknown plan %q; plans are %s", req.Plan, strings.Join(ps.Names(), ", "))
	}
	if req.CoreVersion != "" && !coreVersionRE.MatchString(req.CoreVersion) {
		return badRequest("core_version %q is not a version like 6.4.2", req.CoreVersion)
	}
	return validateLabels(req.Labels)
}

// validateLabels checks label keys and values (of sites and shards).
func validateLabels(labels map[string]string) error {
	for k, v := range labels {
		if !labelKeyRE.MatchString(k) {
			return badRequest("label key %q: use up to 63 letters, digits, '_', '.', '/' or '-'", k)
		}
		if len(v) > 63 {
			return badRequest("label %q: value longer than 63 characters", k)
		}
		if !plainText(v) {
			return badRequest("label %q: value contains control characters", k)
		}
	}
	return nil
}

// bareAddress reports whether a parsed address stands for itself: no
// quoted local part ("a b"@x parses to a b@x, which is no address at all),
// no white space or control characters — it goes to WordPress, which
// checks is_email(), through the installer's environment.
func bareAddress(a string) bool {
	if !plainText(a) || strings.ContainsAny(a, " \"\\()<>,;:") {
		return false
	}
	again, err := mail.ParseAddress(a)
	return err == nil && again.Name == "" && again.Address == a
}

// plainText reports whether s is valid UTF-8 without control characters.
// Titles reach the installer through its environment (where NUL cannot
// be) and both titles and labels end up in terminals (CLI tables), where
// control characters would be escape sequences.
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

const passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

// generatePassword returns a random password of PasswordLength characters
// from crypto/rand, without bias.
func generatePassword() (string, error) {
	out := make([]byte, 0, PasswordLength)
	buf := make([]byte, 64)
	limit := 256 - 256%len(passwordAlphabet)
	for len(out) < PasswordLength {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < PasswordLength {
				out = append(out, passwordAlphabet[int(b)%len(passwordAlphabet)])
			}
		}
	}
	return string(out), nil
}

// newUID returns a random UUID (version 4 layout).
func newUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate uid: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

func (s *server) createSite(c *call) (response, error) {
	var req CreateSiteRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	c.target = req.Domain
	c.auditInTx = true
	n, err := s.newSite(c, &req, nil, false)
	if err != nil {
		return response{}, err
	}
	st := n.site
	return response{status: http.StatusCreated, body: CreateSiteResponse{
		Domain:        st.Metadata.Name,
		URL:           st.Status.URL,
		Status:        st.Status.Phase,
		Shard:         st.Status.Shard,
		AdminUser:     st.Spec.Admin.User,
		AdminPassword: n.password,
		Site:          redact(st),
		CodeJob:       n.job,
	}}, nil
}

// created is what newSite made.
type created struct {
	site     *site.Site
	password string
	job      *store.Job
}

// newSite creates the site req describes — the one path of POST
// /v1/sites and of site files: it validates req, resolves its
// organisation, applies its plan and tweak (more settings: a site file's
// cache, WAF, HTTPS), checks the code and the quota, places and stores the
// site, and starts a code job when it has code. With dryRun it stops
// before placing: the site is what would be created (no password, no job).
func (s *server) newSite(c *call, req *CreateSiteRequest, tweak func(*site.Spec) error, dryRun bool) (*created, error) {
	ctx := c.r.Context()
	if err := validateCreate(req, s.plans()); err != nil {
		return nil, err
	}
	c.target = req.Domain
	org, err := s.newSiteOrg(c, req.Org)
	if err != nil {
		return nil, err
	}
	exists := errorf(http.StatusConflict, CodeAlreadyExists, "site %q already exists", req.Domain)
	// Cheap early check; CreateSite below is the authoritative one.
	if _, err := s.cfg.Store.GetSite(ctx, req.Domain); err == nil {
		return nil, exists
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, internal(fmt.Errorf("get site %q: %w", req.Domain, err))
	}
	st := &site.Site{
		Metadata: site.Metadata{
			Name:      req.Domain,
			Org:       org,
			Labels:    req.Labels,
			CreatedAt: s.cfg.Clock().UTC(),
		},
		Spec: site.Spec{
			Domain:      req.Domain,
			Title:       req.Title,
			CoreVersion: req.CoreVersion,
			Admin:       site.Admin{User: req.AdminUser, Email: req.AdminEmail},
			Cache:       DefaultCache,
			Plugins:     req.Plugins,
			Themes:      req.Themes,
			Options:     req.Options,
			Constants:   req.Constants,
		},
		Status: site.Status{Phase: site.PhasePending, URL: s.cfg.PublicURL(req.Domain)},
	}
	plan, _ := s.plans().Get(req.Plan)
	plan.Apply(&st.Spec)
	st.Spec.Defaults()
	if tweak != nil {
		if err := tweak(&st.Spec); err != nil {
			return nil, err
		}
	}
	if err := s.checkCode(ctx, org, &st.Spec); err != nil {
		return nil, err
	}
	if err := s.checkQuota(ctx, st, req.Plan, true); err != nil {
		return nil, err
	}
	if dryRun {
		st.Metadata.Generation = 1
		return &created{site: st}, nil
	}
	password, err := generatePassword()
	if err != nil {
		return nil, internal(err)
	}
	hash, err := wordpress.PortableHash(password, adminHashLog2, rand.Reader)
	if err != nil {
		return nil, internal(fmt.Errorf("hash password: %w", err))
	}
	st.Spec.Admin.PasswordHash = hash
	if st.Metadata.UID, err = newUID(); err != nil {
		return nil, internal(err)
	}
	// Without a Placer the site is stored unplaced; the leader places it.
	if s.cfg.Placer != nil {
		shard, err := s.cfg.Placer.Place(ctx, st)
		if err != nil {
			return nil, internal(fmt.Errorf("place site %q: %w", req.Domain, err))
		}
		if shard == "" {
			return nil, internal(fmt.Errorf("place site %q: placer returned no shard", req.Domain))
		}
		st.Status.Shard = shard
	}
	// The site's audit entry goes in the create's transaction when the
	// create is the call's last write (no code job to start after it).
	create := s.cfg.Store.CreateSite
	audited := c.auditInTx && !hasCode(&st.Spec)
	if audited {
		create = func(ctx context.Context, st *site.Site) error {
			return s.cfg.Store.CreateSiteAudited(ctx, st, s.callAudit(c, nil))
		}
	}
	if err := create(ctx, st); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return nil, exists
		}
		return nil, internal(fmt.Errorf("create site %q: %w", req.Domain, err))
	}
	if audited {
		c.audited = true
		s.checkpointIfDue(ctx)
	}
	s.cfg.SiteMetrics.Forget(st.Metadata.Name)
	// CreateSite set what the store assigns (generation, resource
	// version, organisation) in st: no need to read it back.
	out := &created{site: st, password: password}
	if hasCode(&st.Spec) {
		if out.job, err = s.startCodeJob(ctx, st, "spec"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// update applies mutate to the site the path names and answers with
// status.
func (s *server) update(c *call, status int, mutate func(*site.Site) error) (response, error) {
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	st, err := s.updateSite(c, name, mutate)
	if err != nil {
		return response{}, err
	}
	return response{status: status, body: redact(st)}, nil
}

// updateSite applies mutate to the site name.
func (s *server) updateSite(c *call, name string, mutate func(*site.Site) error) (*site.Site, error) {
	st, err := s.cfg.Store.UpdateSite(c.r.Context(), name, mutate)
	if err != nil {
		var he HTTPError
		switch {
		case errors.As(err, &he):
			return nil, he
		case errors.Is(err, store.ErrNotFound):
			return nil, siteNotFound(name)
		}
		return nil, internal(fmt.Errorf("update site %q: %w", name, err))
	}
	if c.org == "" {
		c.org = st.Metadata.Org // for the audit log (platform routes)
	}
	return st, nil
}

func (s *server) deleteSite(c *call) (response, error) {
	now := s.cfg.Clock().UTC()
	return s.update(c, http.StatusAccepted, func(st *site.Site) error {
		if st.Metadata.DeletionRequested == nil {
			st.Metadata.DeletionRequested = &now
		}
		st.Status.Phase = site.PhaseDeleting
		return nil
	})
}

func (s *server) setSuspended(c *call, suspended bool) (response, error) {
	return s.update(c, http.StatusOK, func(st *site.Site) error {
		if st.Metadata.DeletionRequested != nil {
			return errorf(http.StatusConflict, CodeConflict, "site %q is being deleted", st.Metadata.Name)
		}
		byPlatform := c.who.platformCan(permSiteSuspend)
		switch {
		case !suspended && st.Spec.SuspendedBy == suspendedByPlatform && !byPlatform:
			return errorf(http.StatusForbidden, CodeForbidden,
				"site %q was suspended by the platform's operators; only they may resume it (contact support)", st.Metadata.Name)
		case suspended && !st.Spec.Suspended, suspended && byPlatform:
			st.Spec.SuspendedBy = suspendedByOrg
			if byPlatform {
				st.Spec.SuspendedBy = suspendedByPlatform
			}
		case !suspended:
			st.Spec.SuspendedBy = ""
		}
		st.Spec.Suspended = suspended
		return nil
	})
}

// Who suspended a site (site.Spec.SuspendedBy).
const (
	suspendedByPlatform = "platform"
	suspendedByOrg      = "org"
)

// setWriteFreeze sets or clears spec.write_freeze: the shard takes the
// site's database writes and WP-Cron away (or gives them back) and
// reports the WritesFrozen condition. Idempotent.
func (s *server) setWriteFreeze(c *call, on bool) (response, error) {
	return s.update(c, http.StatusOK, func(st *site.Site) error {
		if st.Metadata.DeletionRequested != nil {
			return errorf(http.StatusConflict, CodeConflict, "site %q is being deleted", st.Metadata.Name)
		}
		if on && st.Move.Active() {
			return errorf(http.StatusConflict, CodeConflict, "site %q is moving between shards", st.Metadata.Name)
		}
		st.Spec.WriteFreeze = on
		return nil
	})
}

func (s *server) freezeSite(c *call) (response, error)   { return s.setWriteFreeze(c, true) }
func (s *server) unfreezeSite(c *call) (response, error) { return s.setWriteFreeze(c, false) }

func (s *server) suspendSite(c *call) (response, error) { return s.setSuspended(c, true) }
func (s *server) resumeSite(c *call) (response, error)  { return s.setSuspended(c, false) }

func (s *server) whoami(c *call) (response, error) {
	return response{status: http.StatusOK, body: WhoAmIResponse{
		ID: c.token.ID, Name: c.token.Name, Role: c.token.Role, Subject: c.token.Subject, Version: s.cfg.Version,
		Org: c.token.Org, User: c.who.user, PlatformRole: c.who.platform, Orgs: c.who.orgs,
	}}, nil
}

func (s *server) openapi(*call) (response, error) {
	return response{status: http.StatusOK, raw: openAPISpec, contentType: "application/yaml"}, nil
}

// pathSite reads the site the {name} path value names: 404 when there is
// none.
func (s *server) pathSite(c *call) (*site.Site, error) {
	name, err := siteName(c)
	if err != nil {
		return nil, err
	}
	st, err := s.cfg.Store.GetSite(c.r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, siteNotFound(name)
	}
	if err != nil {
		return nil, internal(fmt.Errorf("get site %q: %w", name, err))
	}
	return st, nil
}

// notStaging refuses the names reserved for staged updates' throw-away
// sites (site.StagingSuffix).
func notStaging(domain string) error {
	if site.IsStaging(domain) {
		return HTTPError{Status: http.StatusBadRequest, Code: CodeInvalidDomain,
			Msg: fmt.Sprintf("%q: names ending in %s are reserved for staged updates' staging sites", domain, site.StagingSuffix)}
	}
	return nil
}
