package api

import (
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/aipress/aipress/internal/edge/waf"
	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// UpdateSiteRequest is the body of PATCH /v1/sites/{name}: every field is
// optional, and only the fields present change.
type UpdateSiteRequest struct {
	Title         *string      `json:"title,omitempty"`
	HTTPSRedirect *bool        `json:"https_redirect,omitempty"`
	Cache         *UpdateCache `json:"cache,omitempty"`
	WAF           *UpdateWAF   `json:"waf,omitempty"`
	// Plan moves the site to another plan: its PHP pool, database
	// connections and disk limit change live (the shard applies them on
	// its next pass, without downtime), its backups follow the plan's
	// schedule. Checked against the organisation's plan and the disk the
	// site uses (403 quota_exceeded). Naming the current plan applies its
	// resources again (after the operator changed the plans file).
	Plan *string `json:"plan,omitempty"`
	// Plugins, Themes, Options and Constants replace the site's lists
	// (site.Spec: [] or {} clears one), CoreVersion its WordPress core
	// ("" the shard's default). Checked by site.Spec.ValidateCode; an
	// upload source must be an artefact uploaded to the site's
	// organisation. A change of any starts a code job (the response names
	// it: code_job); a Pending one is reused.
	Plugins     *[]site.Extension  `json:"plugins,omitempty"`
	Themes      *[]site.Extension  `json:"themes,omitempty"`
	Options     *map[string]string `json:"options,omitempty"`
	Constants   *map[string]string `json:"constants,omitempty"`
	CoreVersion *string            `json:"core_version,omitempty"`
	// IfGeneration, when set, makes the change apply only to that
	// generation of the site (409 conflict otherwise): read, change,
	// write back without losing a concurrent change.
	IfGeneration *int64 `json:"if_generation,omitempty"`
}

// SiteResponse is the answer of PATCH /v1/sites/{name}: the site and, when
// the change started (or joined) a code job, that job.
type SiteResponse struct {
	*site.Site
	CodeJob *store.Job `json:"code_job,omitempty"`
}

// UpdateCache changes the page-cache policy.
type UpdateCache struct {
	TTLSeconds *int `json:"ttl_seconds,omitempty"`
}

// UpdateWAF changes the WAF policy. Exclusions replaces the site's
// exclusions ([] clears them); AddExclusions and RemoveExclusions change
// them one by one (removals first; adding one that is there, or removing one
// that is not, changes nothing), so concurrent changes do not undo each
// other. Exclusions cannot be combined with the other two.
type UpdateWAF struct {
	Mode             *string              `json:"mode,omitempty"`
	ParanoiaLevel    *int                 `json:"paranoia_level,omitempty"`
	Exclusions       *[]site.WAFExclusion `json:"exclusions,omitempty"`
	AddExclusions    []site.WAFExclusion  `json:"add_exclusions,omitempty"`
	RemoveExclusions []site.WAFExclusion  `json:"remove_exclusions,omitempty"`
}

// MaxCacheTTLSeconds bounds cache.ttl_seconds (one day).
const MaxCacheTTLSeconds = 86400

func (req *UpdateSiteRequest) validate() error {
	if req.Title != nil && (*req.Title == "" || len(*req.Title) > 200) {
		return badRequest("title must be 1 to 200 characters")
	}
	if req.Title != nil && !plainText(*req.Title) {
		return badRequest("title must not contain control characters (line breaks, tabs, NUL …)")
	}
	if req.Cache != nil && req.Cache.TTLSeconds != nil {
		if ttl := *req.Cache.TTLSeconds; ttl < 0 || ttl > MaxCacheTTLSeconds {
			return badRequest("cache.ttl_seconds must be between 0 and %d", MaxCacheTTLSeconds)
		}
	}
	if v := req.CoreVersion; v != nil && *v != "" && !coreVersionRE.MatchString(*v) {
		return badRequest("core_version %q is not a version like 6.4.2", *v)
	}
	if req.WAF != nil {
		if m := req.WAF.Mode; m != nil && *m != site.WAFOff && *m != site.WAFDetect && *m != site.WAFBlock {
			return badRequest("waf.mode must be off, detect or block")
		}
		if p := req.WAF.ParanoiaLevel; p != nil && (*p < 1 || *p > 4) {
			return badRequest("waf.paranoia_level must be between 1 and 4")
		}
		if req.WAF.Exclusions != nil && (req.WAF.AddExclusions != nil || req.WAF.RemoveExclusions != nil) {
			return badRequest("waf.exclusions replaces the list: give it alone, or add_exclusions and remove_exclusions")
		}
		if req.WAF.Exclusions != nil {
			if err := validateExclusions("waf.exclusions", *req.WAF.Exclusions, true); err != nil {
				return err
			}
		}
		if err := validateExclusions("waf.add_exclusions", req.WAF.AddExclusions, true); err != nil {
			return err
		}
		// A malformed exclusion cannot be there to remove; a rule that
		// left the rule set can.
		if err := validateExclusions("waf.remove_exclusions", req.WAF.RemoveExclusions, false); err != nil {
			return err
		}
	}
	return nil
}

// validateExclusions checks each exclusion's syntax and, with known, that
// its rule exists and may be excluded.
func validateExclusions(field string, list []site.WAFExclusion, known bool) error {
	if len(list) > site.MaxWAFExclusions {
		return badRequest("%s: at most %d exclusions, got %d", field, site.MaxWAFExclusions, len(list))
	}
	for _, e := range list {
		if err := e.Validate(); err != nil {
			return badRequest("%s: %v", field, err)
		}
		if known {
			if err := waf.CheckExcludable(e.RuleID); err != nil {
				return badRequest("%s: %s: %v", field, e, err)
			}
		}
	}
	return nil
}

// sameExclusion reports whether a and b are the same exclusion (arguments
// match case-insensitively, as the WAF matches them).
func sameExclusion(a, b site.WAFExclusion) bool {
	return a.RuleID == b.RuleID && a.Path == b.Path && strings.EqualFold(a.Argument, b.Argument)
}

// applyExclusions returns list changed by req (deduplicated), or an error
// when the result has too many.
func (req *UpdateWAF) applyExclusions(list []site.WAFExclusion) ([]site.WAFExclusion, error) {
	var out []site.WAFExclusion
	add := func(e site.WAFExclusion) {
		if !slices.ContainsFunc(out, func(o site.WAFExclusion) bool { return sameExclusion(o, e) }) {
			out = append(out, e)
		}
	}
	if req.Exclusions != nil {
		for _, e := range *req.Exclusions {
			add(e)
		}
	} else {
		for _, e := range list {
			if !slices.ContainsFunc(req.RemoveExclusions, func(r site.WAFExclusion) bool { return sameExclusion(r, e) }) {
				add(e)
			}
		}
		for _, e := range req.AddExclusions {
			add(e)
		}
	}
	if len(out) > site.MaxWAFExclusions {
		return nil, badRequest("a site may have at most %d WAF exclusions; this change would make %d", site.MaxWAFExclusions, len(out))
	}
	return out, nil
}

// auditDetail summarises the change for the audit log.
func (req *UpdateSiteRequest) auditDetail() string {
	var parts []string
	if req.Title != nil {
		parts = append(parts, "title")
	}
	if req.Plan != nil {
		parts = append(parts, "plan="+*req.Plan)
	}
	if req.HTTPSRedirect != nil {
		parts = append(parts, fmt.Sprintf("https_redirect=%v", *req.HTTPSRedirect))
	}
	if req.Cache != nil && req.Cache.TTLSeconds != nil {
		parts = append(parts, fmt.Sprintf("cache.ttl_seconds=%d", *req.Cache.TTLSeconds))
	}
	if w := req.WAF; w != nil {
		if w.Mode != nil {
			parts = append(parts, "waf.mode="+*w.Mode)
		}
		if w.ParanoiaLevel != nil {
			parts = append(parts, fmt.Sprintf("waf.paranoia_level=%d", *w.ParanoiaLevel))
		}
		if w.Exclusions != nil {
			var ex []string
			for _, e := range *w.Exclusions {
				ex = append(ex, e.String())
			}
			parts = append(parts, "waf.exclusions=["+strings.Join(ex, " ")+"]")
		}
		if len(w.RemoveExclusions)+len(w.AddExclusions) > 0 {
			var ex []string
			for _, e := range w.RemoveExclusions {
				ex = append(ex, "-"+e.String())
			}
			for _, e := range w.AddExclusions {
				ex = append(ex, "+"+e.String())
			}
			parts = append(parts, "waf.exclusions "+strings.Join(ex, " "))
		}
	}
	for _, f := range []struct {
		name  string
		given bool
	}{{"plugins", req.Plugins != nil}, {"themes", req.Themes != nil}, {"options", req.Options != nil},
		{"constants", req.Constants != nil}} {
		if f.given {
			parts = append(parts, f.name)
		}
	}
	if req.CoreVersion != nil {
		parts = append(parts, "core_version="+*req.CoreVersion)
	}
	return clip(strings.Join(parts, "; "), 1000)
}

func (s *server) patchSite(c *call) (response, error) {
	var req UpdateSiteRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	st, job, err := s.patch(c, name, &req)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusOK, body: SiteResponse{Site: redact(st), CodeJob: job}}, nil
}

// patch changes the site name as req says — the one path of PATCH
// /v1/sites/{name} and of site files — and starts a code job when its
// code changed. The caller was authorized on the site.
func (s *server) patch(c *call, name string, req *UpdateSiteRequest) (*site.Site, *store.Job, error) {
	ctx := c.r.Context()
	if err := req.validate(); err != nil {
		return nil, nil, err
	}
	c.detail = req.auditDetail()
	var plan *plans.Plan
	if req.Plan != nil {
		p, err := s.planChange(c, name, *req.Plan)
		if err != nil {
			return nil, nil, err
		}
		plan = &p
	}
	if err := s.checkUploads(ctx, c.org, req.Plugins, req.Themes); err != nil {
		return nil, nil, err
	}
	var codeChanged bool
	st, err := s.updateSite(c, name, func(st *site.Site) error {
		before := codeOf(&st.Spec)
		if err := req.applyTo(st, plan); err != nil {
			return err
		}
		codeChanged = !reflect.DeepEqual(before, codeOf(&st.Spec))
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var job *store.Job
	if codeChanged {
		if job, err = s.startCodeJob(ctx, st, "spec"); err != nil {
			return nil, nil, err
		}
	}
	return st, job, nil
}

// applyTo makes req's changes to st (plan: the plan to move to, already
// checked).
func (req *UpdateSiteRequest) applyTo(st *site.Site, plan *plans.Plan) error {
	if st.Metadata.DeletionRequested != nil {
		return errorf(http.StatusConflict, CodeConflict, "site %q is being deleted", st.Metadata.Name)
	}
	if req.IfGeneration != nil && *req.IfGeneration != st.Metadata.Generation {
		return errorf(http.StatusConflict, CodeConflict, "site %q changed meanwhile (generation %d, the change was made for %d): read it again",
			st.Metadata.Name, st.Metadata.Generation, *req.IfGeneration)
	}
	if plan != nil {
		plan.Apply(&st.Spec)
	}
	if req.Title != nil {
		st.Spec.Title = *req.Title
	}
	if req.HTTPSRedirect != nil {
		st.Spec.HTTPSRedirect = *req.HTTPSRedirect
	}
	if req.Cache != nil && req.Cache.TTLSeconds != nil {
		st.Spec.Cache.TTLSeconds = *req.Cache.TTLSeconds
	}
	if req.WAF != nil {
		if req.WAF.Mode != nil {
			st.Spec.WAF.Mode = *req.WAF.Mode
		}
		if req.WAF.ParanoiaLevel != nil {
			st.Spec.WAF.ParanoiaLevel = *req.WAF.ParanoiaLevel
		}
		if req.WAF.Exclusions != nil || req.WAF.AddExclusions != nil || req.WAF.RemoveExclusions != nil {
			ex, err := req.WAF.applyExclusions(st.Spec.WAF.Exclusions)
			if err != nil {
				return err
			}
			st.Spec.WAF.Exclusions = ex
		}
	}
	if req.Plugins != nil {
		st.Spec.Plugins = slices.Clone(*req.Plugins)
	}
	if req.Themes != nil {
		st.Spec.Themes = slices.Clone(*req.Themes)
	}
	if req.Options != nil {
		st.Spec.Options = maps.Clone(*req.Options)
	}
	if req.Constants != nil {
		st.Spec.Constants = maps.Clone(*req.Constants)
	}
	if req.CoreVersion != nil {
		st.Spec.CoreVersion = *req.CoreVersion
	}
	if err := st.Spec.ValidateCode(); err != nil {
		return badRequest("%v", err)
	}
	return nil
}
