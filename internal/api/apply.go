package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitefile"
	"github.com/aipress/aipress/internal/store"
)

// CodeInvalidSiteFile is the error code of a site file that does not
// validate; the error's details list every problem with its position.
const CodeInvalidSiteFile = "invalid_site_file"

// ApplyOptions say how a site file is applied.
type ApplyOptions struct {
	// DryRun computes and returns the plan, changing nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Enforce also brings back what drifted from the spec (a code job
	// even when the spec does not change).
	Enforce bool `json:"enforce,omitempty"`
	// Source says where the file came from, for the audit log ("cli",
	// "git <repo>@<commit>").
	Source string `json:"source,omitempty"`
	// Name is the file's name in error positions (default "site.yaml").
	Name string `json:"name,omitempty"`
}

// ApplyResult is the answer of POST /v1/apply: the plan (what changes and
// why) and, unless it was a dry run, what was done.
type ApplyResult struct {
	Site    string             `json:"site"`
	Create  bool               `json:"create"`
	DryRun  bool               `json:"dry_run"`
	Changes []store.CodeChange `json:"changes"`
	// Job is the code job that applies the code changes ("" when none).
	Job string `json:"job,omitempty"`
	// Generation is the site's spec generation after the apply (what it
	// would be, for a dry run).
	Generation int64 `json:"generation,omitempty"`
	// AdminPassword is the new site's admin password: shown once, when a
	// site file created the site.
	AdminPassword string `json:"admin_password,omitempty"`
}

// siteFileError is the 400 of an invalid site file: the problems in the
// message, one a line, and as the error's details.
func siteFileError(probs []sitefile.Problem) HTTPError {
	lines := make([]string, len(probs))
	for i, p := range probs {
		lines[i] = p.String()
	}
	return HTTPError{Status: http.StatusBadRequest, Code: CodeInvalidSiteFile,
		Msg: "invalid site file:\n" + strings.Join(lines, "\n"), Details: &probs}
}

// apiFields places the API's own validation messages at the file's
// fields: a message starting with the key names the field.
var apiFields = []struct{ prefix, path string }{
	{"title", "spec.title"},
	{"cache.ttl_seconds", "spec.cache.ttl_seconds"},
	{"waf.mode", "spec.waf.mode"},
	{"waf.paranoia_level", "spec.waf.paranoia_level"},
	{"waf.", "spec.waf.exclusions"},
	{"a site may have at most", "spec.waf.exclusions"},
	{"unknown plan", "spec.plan"},
	{"core_version", "spec.core.version"},
	{"label", "metadata.labels"},
	{"admin_user", "spec.admin.user"},
	{"admin_email", "spec.admin.email"},
	{"invalid domain", "metadata.name"},
	{"name the organisation", "metadata.org"},
}

// placeError turns an invalid-argument error of the API's checks into a
// positioned site file error; other errors (not found, forbidden, quota,
// conflict) are returned as they are.
func placeError(d *sitefile.Doc, err error) error {
	var he HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusBadRequest || he.Details != nil {
		return err
	}
	msg := he.Msg
	for _, kind := range []string{"plugins", "themes", "options", "constants"} {
		if strings.HasPrefix(msg, kind) {
			if field, rest, ok := strings.Cut(msg, ": "); ok {
				return siteFileError([]sitefile.Problem{d.At("spec."+field, "%s", rest)})
			}
		}
	}
	for _, f := range apiFields {
		if strings.HasPrefix(msg, f.prefix) {
			return siteFileError([]sitefile.Problem{d.At(f.path, "%s", msg)})
		}
	}
	return siteFileError([]sitefile.Problem{d.At("spec", "%s", msg)})
}

// applySiteFile validates the site file doc (YAML or JSON; errors name
// line and column), computes its plan against the stored site and its
// observed code, and unless opts.DryRun applies it as c's principal:
// creates the site or updates its spec, and starts a code job when code
// changed (or drifted, with opts.Enforce). Shared by POST /v1/apply and git
// sync.
//
// c needs r (its context is the operation's) and who; the permission
// checked is site.write in the file's organisation, for dry runs too.
// Creation takes the path of POST /v1/sites and updates that of PATCH
// /v1/sites/{name}: the same checks, quotas and placement. Fields the API
// cannot change (php, which the plan gives; backup; admin, labels and org
// after creation) are compared with the site's, and a difference is an
// error at the field. An invalid file is a 400 HTTPError with code
// invalid_site_file whose Details are the positioned problems.
func (s *server) applySiteFile(c *call, doc []byte, opts ApplyOptions) (*ApplyResult, error) {
	name := opts.Name
	if name == "" {
		name = "site.yaml"
	}
	d, err := sitefile.Parse(name, doc)
	if err != nil {
		if probs := sitefile.Problems(err); len(probs) > 0 {
			return nil, siteFileError(probs)
		}
		return nil, badRequest("%v", err)
	}
	c.perm = permSiteWrite
	f := &d.File
	c.target = f.Metadata.Name
	c.detail = clip(strings.TrimSpace("apply "+opts.Source), 200)
	ctx := c.r.Context()
	cur, err := s.cfg.Store.GetSite(ctx, f.Metadata.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return s.applyCreate(c, d, opts)
	case err != nil:
		return nil, internal(fmt.Errorf("get site %q: %w", f.Metadata.Name, err))
	}
	if err := c.allow(cur.Metadata.Org, siteNotFound(f.Metadata.Name)); err != nil {
		return nil, err
	}
	if cur.Metadata.DeletionRequested != nil {
		return nil, errorf(http.StatusConflict, CodeConflict, "site %q is being deleted", cur.Metadata.Name)
	}
	var probs []sitefile.Problem
	if f.Metadata.Org != "" && f.Metadata.Org != cur.Metadata.Org {
		probs = append(probs, d.At("metadata.org", "the site belongs to %q; a site file cannot move it to another organisation", cur.Metadata.Org))
	}
	if f.Metadata.Labels != nil && !sameMap(f.Metadata.Labels, cur.Metadata.Labels) {
		probs = append(probs, d.At("metadata.labels", "labels are set at creation and cannot be changed by a site file (the site has %s)", showMap(cur.Metadata.Labels)))
	}
	if a := f.Spec.Admin; a != nil {
		if a.Email != cur.Spec.Admin.Email {
			probs = append(probs, d.At("spec.admin.email", "the first administrator is set at creation (%s); change users in WordPress", cur.Spec.Admin.Email))
		}
		if a.User != "" && a.User != cur.Spec.Admin.User {
			probs = append(probs, d.At("spec.admin.user", "the first administrator is set at creation (%s); change users in WordPress", cur.Spec.Admin.User))
		}
	}
	planName := cur.Spec.Plan
	if f.Spec.Plan != nil {
		planName = *f.Spec.Plan
	}
	probs = append(probs, s.checkReadOnly(d, planName, cur.Spec.Backup)...)
	if len(probs) > 0 {
		return nil, siteFileError(probs)
	}
	req := updateRequest(f)
	if err := req.validate(); err != nil {
		return nil, placeError(d, err)
	}
	want := cloneSite(cur)
	if req.Plan != nil {
		p, err := s.planChange(c, cur.Metadata.Name, *req.Plan)
		if err != nil {
			return nil, placeError(d, err)
		}
		if err := req.applyTo(want, &p); err != nil {
			return nil, placeError(d, err)
		}
	} else if err := req.applyTo(want, nil); err != nil {
		return nil, placeError(d, err)
	}
	if err := s.checkUploads(ctx, cur.Metadata.Org, req.Plugins, req.Themes); err != nil {
		return nil, placeError(d, err)
	}
	changes := sitefile.Plan(cur, &want.Spec)
	codeChanged := len(sitefile.CodePlan(&cur.Spec, &want.Spec)) > 0
	drift, err := s.drift(c, cur, &want.Spec, changes)
	if err != nil {
		return nil, err
	}
	res := &ApplyResult{Site: cur.Metadata.Name, DryRun: opts.DryRun, Changes: append(changes, drift...),
		Generation: cur.Metadata.Generation}
	if len(changes) > 0 {
		res.Generation++
	}
	if opts.DryRun {
		return res, nil
	}
	var job *store.Job
	if len(changes) > 0 {
		gen := cur.Metadata.Generation
		req.IfGeneration = &gen
		st, j, err := s.patch(c, cur.Metadata.Name, req)
		if err != nil {
			return nil, placeError(d, err)
		}
		res.Generation, job = st.Metadata.Generation, j
		cur = st
	}
	if job == nil && (codeChanged || (opts.Enforce && (len(drift) > 0 || (cur.Status.Code == nil && hasCode(&cur.Spec))))) {
		reason := "spec"
		if !codeChanged {
			reason = "enforce"
		}
		if job, err = s.startCodeJob(ctx, cur, reason); err != nil {
			return nil, err
		}
	}
	if job != nil {
		res.Job = job.ID
	}
	c.detail = clip(fmt.Sprintf("apply %s: %d changes%s", strings.TrimSpace(opts.Source), len(res.Changes), jobNote(res.Job)), 1000)
	return res, nil
}

func jobNote(id string) string {
	if id == "" {
		return ""
	}
	return "; code job " + id
}

// drift lists what the site runs that want does not say, leaving out what
// changes already cover, and nothing while a code job is under way (what
// runs is then about to change).
func (s *server) drift(c *call, cur *site.Site, want *site.Spec, changes []store.CodeChange) ([]store.CodeChange, error) {
	if cur.Status.Code == nil {
		return nil, nil
	}
	j, err := s.activeJob(c.r.Context(), store.JobCode, cur.Metadata.Name, "")
	if err != nil {
		return nil, err
	}
	if j != nil {
		return nil, nil
	}
	var out []store.CodeChange
	for _, d := range sitefile.Drift(want, cur.Status.Code) {
		covered := false
		for _, ch := range changes {
			if ch.Kind == d.Kind && ch.Name == d.Name {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, d)
		}
	}
	return out, nil
}

// applyCreate creates the site a file describes, through newSite.
func (s *server) applyCreate(c *call, d *sitefile.Doc, opts ApplyOptions) (*ApplyResult, error) {
	f := &d.File
	var probs []sitefile.Problem
	if f.Spec.Admin == nil {
		probs = append(probs, d.At("spec.admin", "missing: creating a site needs its first administrator (admin: {email: …})"))
	}
	if f.Spec.Title == nil {
		probs = append(probs, d.At("spec.title", "missing: creating a site needs a title"))
	}
	if f.Metadata.Labels != nil {
		if err := validateLabels(f.Metadata.Labels); err != nil {
			return nil, placeError(d, err)
		}
	}
	planName := ""
	if f.Spec.Plan != nil {
		planName = *f.Spec.Plan
	}
	if planName == "" {
		planName = s.plans().Default().Name
	}
	probs = append(probs, s.checkReadOnly(d, planName, site.BackupPolicy{})...)
	if len(probs) > 0 {
		return nil, siteFileError(probs)
	}
	req := &CreateSiteRequest{Domain: f.Metadata.Name, Title: *f.Spec.Title, AdminUser: f.Spec.Admin.User,
		AdminEmail: f.Spec.Admin.Email, Plan: planName, Labels: f.Metadata.Labels, Org: f.Metadata.Org}
	var code site.Spec
	f.Spec.ApplyCode(&code)
	req.CoreVersion, req.Plugins, req.Themes, req.Options, req.Constants = code.CoreVersion, code.Plugins, code.Themes,
		code.Options, code.Constants
	upd := updateRequest(f)
	upd.Title, upd.Plan = nil, nil
	upd.Plugins, upd.Themes, upd.Options, upd.Constants, upd.CoreVersion = nil, nil, nil, nil, nil
	if err := upd.validate(); err != nil {
		return nil, placeError(d, err)
	}
	tweak := func(sp *site.Spec) error {
		st := &site.Site{Metadata: site.Metadata{Name: f.Metadata.Name}, Spec: *sp}
		if err := upd.applyTo(st, nil); err != nil {
			return err
		}
		*sp = st.Spec
		return nil
	}
	n, err := s.newSite(c, req, tweak, opts.DryRun)
	if err != nil {
		return nil, placeError(d, err)
	}
	res := &ApplyResult{Site: n.site.Metadata.Name, Create: true, DryRun: opts.DryRun,
		Changes: sitefile.Plan(nil, &n.site.Spec), Generation: n.site.Metadata.Generation, AdminPassword: n.password}
	if n.job != nil {
		res.Job = n.job.ID
	}
	c.detail = clip(fmt.Sprintf("apply %s: created%s", strings.TrimSpace(opts.Source), jobNote(res.Job)), 1000)
	return res, nil
}

// updateRequest is the PATCH a file makes: every field it gives that PATCH
// can change.
func updateRequest(f *sitefile.File) *UpdateSiteRequest {
	sp := &f.Spec
	req := &UpdateSiteRequest{Title: sp.Title, Plan: sp.Plan, Plugins: nil}
	if sp.Cache != nil {
		req.Cache = &UpdateCache{TTLSeconds: &sp.Cache.TTLSeconds}
	}
	if w := sp.WAF; w != nil {
		req.WAF = &UpdateWAF{Mode: w.Mode, ParanoiaLevel: w.ParanoiaLevel}
		if w.Exclusions != nil {
			ex := w.SiteExclusions()
			if ex == nil {
				ex = []site.WAFExclusion{}
			}
			req.WAF.Exclusions = &ex
		}
	}
	if sp.HTTPS != nil {
		req.HTTPSRedirect = sp.HTTPS.Redirect
	}
	if sp.Plugins != nil {
		l := sitefile.Extensions(*sp.Plugins)
		req.Plugins = &l
	}
	if sp.Themes != nil {
		l := sitefile.Extensions(*sp.Themes)
		req.Themes = &l
	}
	if sp.Options != nil {
		m := *sp.Options
		req.Options = &m
	}
	if sp.Constants != nil {
		m := *sp.Constants
		req.Constants = &m
	}
	if sp.Core != nil {
		req.CoreVersion = &sp.Core.Version
	}
	return req
}

// checkReadOnly compares the fields the API cannot change with what the
// site has: php with what plan gives, backup with the site's policy.
func (s *server) checkReadOnly(d *sitefile.Doc, plan string, backup site.BackupPolicy) []sitefile.Problem {
	var probs []sitefile.Problem
	f := &d.File
	if php := f.Spec.PHP; php != nil {
		p, ok := s.plans().Get(plan)
		if !ok {
			return []sitefile.Problem{d.At("spec.plan", "unknown plan %q; plans are %s", plan, strings.Join(s.plans().Names(), ", "))}
		}
		check := func(field string, got *int, want int) {
			if got != nil && *got != want {
				probs = append(probs, d.At("spec.php."+field, "%d differs from what plan %s gives (%d): PHP settings come from the plan; change the plan or leave php out",
					*got, plan, want))
			}
		}
		check("max_children", php.MaxChildren, p.PHP.MaxChildren)
		check("memory_limit_mb", php.MemoryLimitMB, p.PHP.MemoryLimitMB)
		check("upload_max_mb", php.UploadMaxMB, p.PHP.UploadMaxMB)
		check("idle_timeout_seconds", php.IdleTimeoutSeconds, p.PHP.IdleTimeoutSecond)
		check("request_timeout_seconds", php.RequestTimeoutSeconds, p.PHP.RequestTimeoutSeconds)
	}
	if b := f.Spec.Backup; b != nil {
		check := func(field string, got *int, want int) {
			if got != nil && *got != want {
				probs = append(probs, d.At("spec.backup."+field, "%d differs from the site's backup policy (%d): no API changes a backup policy yet; leave backup out",
					*got, want))
			}
		}
		check("every_hours", b.EveryHours, backup.EveryHours)
		if k := b.Keep; k != nil {
			check("keep.hourly", k.Hourly, backup.Keep.Hourly)
			check("keep.daily", k.Daily, backup.Keep.Daily)
			check("keep.weekly", k.Weekly, backup.Keep.Weekly)
			check("keep.monthly", k.Monthly, backup.Keep.Monthly)
		}
	}
	return probs
}

func cloneSite(st *site.Site) *site.Site {
	raw, _ := json.Marshal(st)
	var out site.Site
	_ = json.Unmarshal(raw, &out)
	return &out
}

func sameMap(a, b map[string]string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func showMap(m map[string]string) string {
	if len(m) == 0 {
		return "none"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// applyFile is POST /v1/apply: the body is a site file (YAML or JSON);
// ?dry_run=true only plans, ?enforce=true also brings back drift.
func (s *server) applyFile(c *call) (response, error) {
	q := c.r.URL.Query()
	var opts ApplyOptions
	for _, p := range []struct {
		name string
		v    *bool
	}{{"dry_run", &opts.DryRun}, {"enforce", &opts.Enforce}} {
		if v := q.Get(p.name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return response{}, badRequest("%s must be true or false, got %q", p.name, v)
			}
			*p.v = b
		}
	}
	opts.Name = q.Get("file")
	if len(opts.Name) > 200 || !plainText(opts.Name) {
		return response{}, badRequest("file must be a short name without control characters")
	}
	opts.Source = c.channel
	body, err := io.ReadAll(io.LimitReader(c.r.Body, sitefile.MaxBytes+1))
	if err != nil {
		return response{}, badRequest("read body: %v", err)
	}
	if len(body) > sitefile.MaxBytes {
		return response{}, errorf(http.StatusRequestEntityTooLarge, CodeInvalidArgument, "a site file is at most %d bytes", sitefile.MaxBytes)
	}
	res, err := s.applySiteFile(c, body, opts)
	if err != nil {
		return response{}, err
	}
	status := http.StatusOK
	if res.Create && !res.DryRun {
		status = http.StatusCreated
	}
	if res.DryRun {
		return response{status: status, body: res, unchanged: true}, nil
	}
	return response{status: status, body: res}, nil
}
