package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// A site's code (plugins, themes, options, constants, core; site/code.go)
// is applied by code jobs (store.JobCode) on its shard. The API starts one
// whenever a change of the spec changes the code (create, PATCH, a site
// file), and on POST /v1/sites/{name}/code/enforce. A Pending code job of
// the site is reused: it applies the spec as it is when it runs.
//
// A site that is not placed yet gets its code job without a shard; the
// control plane's leader hands it to the site's shard when it places the
// site (control.Controller), and the shard's job waits until WordPress is
// installed. So a site created with plugins ends with them installed.

// codeOf is the code part of a spec, to tell whether a change touched it.
type codeSpec struct {
	Core      string
	Plugins   []site.Extension
	Themes    []site.Extension
	Options   map[string]string
	Constants map[string]string
}

func codeOf(sp *site.Spec) codeSpec {
	c := codeSpec{Core: sp.CoreVersion, Plugins: sp.Plugins, Themes: sp.Themes, Options: sp.Options, Constants: sp.Constants}
	// nil and empty are the same code.
	if len(c.Plugins) == 0 {
		c.Plugins = nil
	}
	if len(c.Themes) == 0 {
		c.Themes = nil
	}
	if len(c.Options) == 0 {
		c.Options = nil
	}
	if len(c.Constants) == 0 {
		c.Constants = nil
	}
	return c
}

// hasCode reports whether a spec asks for any code beyond a bare
// WordPress.
func hasCode(sp *site.Spec) bool {
	return len(sp.Plugins)+len(sp.Themes)+len(sp.Options)+len(sp.Constants) > 0 || sp.CoreVersion != ""
}

// checkCode checks a new site's code: the rules of site.Spec.ValidateCode,
// and that every upload source is an artefact of org.
func (s *server) checkCode(ctx context.Context, org string, sp *site.Spec) error {
	if err := sp.ValidateCode(); err != nil {
		return badRequest("%v", err)
	}
	return s.checkUploads(ctx, org, &sp.Plugins, &sp.Themes)
}

// checkUploads refuses an upload source that names no artefact uploaded
// to org: a site only runs its own organisation's uploads.
func (s *server) checkUploads(ctx context.Context, org string, lists ...*[]site.Extension) error {
	for i, l := range lists {
		if l == nil {
			continue
		}
		field := [...]string{"plugins", "themes"}[i]
		for j, e := range *l {
			if e.Source.SourceType() != site.SourceUpload {
				continue
			}
			ok, err := s.artefactUploaded(ctx, org, e.Source.SHA256)
			if err != nil {
				return internal(fmt.Errorf("look up artefact %s: %w", e.Source.SHA256, err))
			}
			if !ok {
				return badRequest("%s[%d].source.sha256: no artefact %s was uploaded to organisation %q (aipress artefact upload)",
					field, j, e.Source.SHA256, org)
			}
		}
	}
	return nil
}

// startCodeJob returns the site's Pending code job, or creates one (on
// the site's shard; without a shard when it is not placed yet: the leader
// hands it over at placement).
func (s *server) startCodeJob(ctx context.Context, st *site.Site, reason string) (*store.Job, error) {
	l, err := s.cfg.Store.ListJobs(ctx, store.JobListOptions{Site: st.Metadata.Name, Kind: store.JobCode,
		Phases: []store.JobPhase{store.JobPending}, Limit: 10})
	if err != nil {
		return nil, internal(fmt.Errorf("list code jobs: %w", err))
	}
	for i := range l.Items {
		if l.Items[i].SiteUID == st.Metadata.UID {
			return &l.Items[i], nil
		}
	}
	j, err := s.createJob(ctx, store.JobCode, st.Metadata.Name, st.Metadata.UID, st.Status.Shard,
		store.CodeParams{Generation: st.Metadata.Generation, Reason: reason})
	if err != nil {
		return nil, err
	}
	if j.Shard != "" {
		return j, nil
	}
	// The leader may have placed the site between the read and the job's
	// creation, before the job existed to be handed over: look again.
	cur, err := s.cfg.Store.GetSite(ctx, st.Metadata.Name)
	if err != nil || cur.Status.Shard == "" || cur.Metadata.UID != st.Metadata.UID {
		return j, nil //nolint:nilerr // the leader hands it over when it places the site
	}
	return AssignCodeJob(ctx, s.cfg.Store, j.ID, cur.Status.Shard)
}

// AssignCodeJob gives the shardless Pending code job id to shard (the
// site's shard once placed); a job that has a shard or has started is left
// as it is. The control plane's leader calls it when it places a site.
func AssignCodeJob(ctx context.Context, st store.Store, id, shard string) (*store.Job, error) {
	j, err := st.UpdateJob(ctx, id, func(j *store.Job) error {
		if j.Shard == "" && j.Phase == store.JobPending && j.Kind == store.JobCode {
			j.Shard = shard
		}
		return nil
	})
	if err != nil {
		return nil, internal(fmt.Errorf("assign code job %s to shard %s: %w", id, shard, err))
	}
	return j, nil
}

// CodeEnforceResponse is the answer of POST /v1/sites/{name}/code/enforce.
type CodeEnforceResponse struct {
	Job *store.Job `json:"job"`
}

// enforceCode starts a code job that brings what the site runs back to its
// spec (or joins the Pending one).
func (s *server) enforceCode(c *call) (response, error) {
	ctx := c.r.Context()
	st, err := s.pathSite(c)
	if err != nil {
		return response{}, err
	}
	if st.Metadata.DeletionRequested != nil {
		return response{}, errorf(http.StatusConflict, CodeConflict, "site %q is being deleted", st.Metadata.Name)
	}
	j, err := s.startCodeJob(ctx, st, "enforce")
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusAccepted, body: CodeEnforceResponse{Job: j}}, nil
}
