package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aipress/aipress/internal/gitsync"
	"github.com/aipress/aipress/internal/store"
)

// Git sync's routes (package gitsync keeps the records; its poller in the
// leader applies the commits through GitApplier):
//   - PUT/GET/DELETE /v1/sites/{name}/git, POST /v1/sites/{name}/git/sync
//   - PUT/GET/DELETE /v1/orgs/{org}/git, POST /v1/orgs/{org}/git/sync
//   - GET /v1/orgs/{org}/git/credentials, PUT/DELETE
//     /v1/orgs/{org}/git/credentials/{secret}: the named credentials a
//     configuration refers to (write-only: never read back)
//   - POST /v1/git/hooks/{id}: the webhook (no token; an HMAC signature)

// ChannelGit is the audit channel of changes git sync applied.
const ChannelGit = "git"

func (s *server) gitSync() (*gitsync.Manager, error) {
	if s.cfg.GitSync == nil {
		return nil, errorf(http.StatusNotImplemented, CodeUnimplemented, "git sync is not configured on this control plane")
	}
	return s.cfg.GitSync, nil
}

// gitError maps gitsync's errors to the API's.
func gitError(err error, notFound string) error {
	switch {
	case errors.Is(err, gitsync.ErrInvalid):
		return badRequest("%s", err.Error())
	case errors.Is(err, gitsync.ErrNotFound):
		return errorf(http.StatusNotFound, CodeNotFound, "%s", notFound)
	default:
		return internal(err)
	}
}

// gitTarget resolves the route's target and the organisation it belongs
// to.
func (s *server) gitTarget(c *call) (gitsync.Target, string, error) {
	if org := c.r.PathValue("org"); org != "" {
		if _, err := s.cfg.Store.GetOrg(c.r.Context(), org); errors.Is(err, store.ErrNotFound) {
			return gitsync.Target{}, "", orgNotFound(org)
		} else if err != nil {
			return gitsync.Target{}, "", internal(fmt.Errorf("get organisation %q: %w", org, err))
		}
		c.target = org
		return gitsync.Target{Kind: gitsync.KindOrg, Name: org}, org, nil
	}
	name, err := siteName(c)
	if err != nil {
		return gitsync.Target{}, "", err
	}
	st, err := s.allowSite(c, name)
	if err != nil {
		return gitsync.Target{}, "", err
	}
	return gitsync.Target{Kind: gitsync.KindSite, Name: name}, st.Metadata.Org, nil
}

func gitNotFound(t gitsync.Target) string {
	return fmt.Sprintf("%s has no git sync configured", t)
}

// putGit sets a site's or an organisation's git sync configuration (200;
// 201 with the webhook's secret, shown this once, when it is new).
func (s *server) putGit(c *call) (response, error) {
	m, err := s.gitSync()
	if err != nil {
		return response{}, err
	}
	var cfg gitsync.Config
	if err := decodeJSON(c.r, &cfg); err != nil {
		return response{}, err
	}
	t, org, err := s.gitTarget(c)
	if err != nil {
		return response{}, err
	}
	v, err := m.Put(c.r.Context(), t, org, cfg)
	if err != nil {
		return response{}, gitError(err, gitNotFound(t))
	}
	c.detail = "url=" + v.Config.URL + " branch=" + v.Config.Branch + " path=" + v.Config.Path
	status := http.StatusOK
	if v.Webhook.Secret != "" {
		status = http.StatusCreated
	}
	return response{status: status, body: v}, nil
}

// getGit shows the configuration (never a credential) and its status.
func (s *server) getGit(c *call) (response, error) {
	m, err := s.gitSync()
	if err != nil {
		return response{}, err
	}
	t, _, err := s.gitTarget(c)
	if err != nil {
		return response{}, err
	}
	v, err := m.Get(c.r.Context(), t)
	if err != nil {
		return response{}, gitError(err, gitNotFound(t))
	}
	return response{status: http.StatusOK, body: v}, nil
}

// deleteGit stops syncing; the sites stay as they are.
func (s *server) deleteGit(c *call) (response, error) {
	m, err := s.gitSync()
	if err != nil {
		return response{}, err
	}
	t, _, err := s.gitTarget(c)
	if err != nil {
		return response{}, err
	}
	if err := m.Delete(c.r.Context(), t); err != nil {
		return response{}, gitError(err, gitNotFound(t))
	}
	return response{status: http.StatusNoContent}, nil
}

// syncGit asks for a sync now (202; the status shows its outcome).
func (s *server) syncGit(c *call) (response, error) {
	m, err := s.gitSync()
	if err != nil {
		return response{}, err
	}
	t, _, err := s.gitTarget(c)
	if err != nil {
		return response{}, err
	}
	v, err := m.RequestSync(c.r.Context(), t)
	if err != nil {
		return response{}, gitError(err, gitNotFound(t))
	}
	return response{status: http.StatusAccepted, body: v}, nil
}

// GitCredentialList is the answer of GET /v1/orgs/{org}/git/credentials.
type GitCredentialList struct {
	Items []gitsync.CredentialInfo `json:"items"`
}

func (s *server) listGitCredentials(c *call) (response, error) {
	m, err := s.gitSync()
	if err != nil {
		return response{}, err
	}
	_, org, err := s.gitTarget(c)
	if err != nil {
		return response{}, err
	}
	l, err := m.ListCredentials(c.r.Context(), org)
	if err != nil {
		return response{}, internal(err)
	}
	return response{status: http.StatusOK, body: GitCredentialList{Items: l}}, nil
}

// putGitCredential stores (or replaces) a named credential, sealed.
func (s *server) putGitCredential(c *call) (response, error) {
	m, err := s.gitSync()
	if err != nil {
		return response{}, err
	}
	var cred gitsync.Credential
	if err := decodeJSON(c.r, &cred); err != nil {
		return response{}, err
	}
	_, org, err := s.gitTarget(c)
	if err != nil {
		return response{}, err
	}
	name := c.r.PathValue("secret")
	c.detail = "credential=" + name
	if err := m.PutCredential(c.r.Context(), org, name, cred); err != nil {
		return response{}, gitError(err, "")
	}
	return response{status: http.StatusOK, body: gitsync.CredentialInfo{Name: name, Username: cred.Username}}, nil
}

func (s *server) deleteGitCredential(c *call) (response, error) {
	m, err := s.gitSync()
	if err != nil {
		return response{}, err
	}
	_, org, err := s.gitTarget(c)
	if err != nil {
		return response{}, err
	}
	name := c.r.PathValue("secret")
	c.detail = "credential=" + name
	if err := m.DeleteCredential(c.r.Context(), org, name); err != nil {
		return response{}, gitError(err, fmt.Sprintf("organisation %s has no git credential %q", org, name))
	}
	return response{status: http.StatusNoContent}, nil
}

// GitHookResult is the answer of a webhook delivery.
type GitHookResult struct {
	Sync gitsync.Target `json:"sync"`
}

// gitHook is the webhook: a delivery signed with the webhook's secret
// requests a sync (202); anything else is 401 and changes nothing.
func (s *server) gitHook(c *call) (response, error) {
	m, err := s.gitSync()
	if err != nil {
		return response{}, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, c.r.Body, gitsync.MaxHookBody))
	if err != nil {
		return response{}, errorf(http.StatusRequestEntityTooLarge, CodeInvalidArgument, "body larger than %d bytes", gitsync.MaxHookBody)
	}
	t, err := m.Hook(c.r.Context(), c.r.PathValue("id"), c.r.Header, body)
	if errors.Is(err, gitsync.ErrBadSignature) {
		return response{}, errorf(http.StatusUnauthorized, CodeUnauthenticated, "bad or missing signature (X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body with the webhook's secret>)")
	}
	if err != nil {
		return response{}, internal(err)
	}
	return response{status: http.StatusAccepted, body: GitHookResult{Sync: t}}, nil
}

// GitApplier returns the applier git sync's poller applies site files
// with: applySiteFile acting as a developer of the request's organisation
// (a principal built in process, no token stored), audited with channel
// "git" and the commit as the source. cfg is the API's configuration
// (the same Store, Hub and Notify as the handler's).
func GitApplier(cfg Config) gitsync.Applier {
	s := newServer(cfg)
	return gitsync.ApplierFunc(s.applyFromGit)
}

// gitMessage is the message of a refused apply as git sync's status
// shows it: an invalid file's problems one a line, each with its
// file:line:column (the first gives the status its position), without the
// "invalid site file:" heading the API's answer has.
func gitMessage(he HTTPError) string {
	if he.Details == nil || len(*he.Details) == 0 {
		return he.Msg
	}
	lines := make([]string, len(*he.Details))
	for i, p := range *he.Details {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func (s *server) applyFromGit(ctx context.Context, req gitsync.ApplyRequest) (*gitsync.ApplyResult, error) {
	if !store.ValidOrgName(req.Org) {
		return nil, fmt.Errorf("organisation %q: not a valid name", req.Org)
	}
	if _, err := s.cfg.Store.GetOrg(ctx, req.Org); err != nil {
		return nil, fmt.Errorf("organisation %s: %w", req.Org, err)
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "/v1/apply", http.NoBody)
	if err != nil {
		return nil, err
	}
	r.RemoteAddr = "git-sync"
	tok := &store.Token{ID: "git-sync:" + req.Org, Org: req.Org, Role: store.Role(store.OrgDeveloper)}
	c := &call{r: r, token: tok, who: &principal{token: tok, orgs: map[string]store.OrgRole{req.Org: store.OrgDeveloper}},
		action: "site.apply", perm: permSiteWrite, target: req.Site, channel: ChannelGit}
	if req.Site != "" {
		// A site's configuration changes that site only.
		if _, err := s.allowSite(c, req.Site); err != nil {
			return nil, errors.New(asHTTPError(err).Msg)
		}
		dry, err := s.applySiteFile(c, req.Doc, ApplyOptions{DryRun: true, Source: req.Source, Name: req.File})
		if err != nil {
			return nil, errors.New(gitMessage(asHTTPError(err)))
		}
		if dry.Site != req.Site {
			return nil, fmt.Errorf("the file names site %q; this configuration syncs %s", dry.Site, req.Site)
		}
	}
	res, err := s.applySiteFile(c, req.Doc, ApplyOptions{DryRun: req.DryRun, Source: req.Source, Name: req.File})
	if !req.DryRun {
		if res != nil {
			c.target = res.Site
		}
		c.detail = "source=" + req.Source + " file=" + req.File
		s.audit(ctx, route{Action: "site.apply"}, c, err)
		if err == nil {
			s.cfg.Hub.Notify()
			if s.cfg.Notify != nil {
				s.cfg.Notify()
			}
		}
	}
	if err != nil {
		if he := asHTTPError(err); he.Status < 500 {
			return nil, errors.New(gitMessage(he))
		}
		return nil, err
	}
	return &gitsync.ApplyResult{Site: res.Site, Create: res.Create, Changes: res.Changes, Job: res.Job}, nil
}
