package api

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/loginlink"
	"github.com/aipress/aipress/internal/site"
)

// LoginLink is the 200 body of POST /v1/sites/{name}/login-link: a URL
// that signs a browser into the site's wp-admin as User, once, until
// ExpiresAt (internal/loginlink).
type LoginLink struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	User      string    `json:"user"`
}

// createLoginLink makes a one-time wp-admin sign-in link for the site's
// administrator, signed with the site's login key.
func (s *server) createLoginLink(c *call) (response, error) {
	if s.cfg.LoginKey == nil {
		return response{}, errorf(http.StatusNotImplemented, CodeUnimplemented, "sign-in links are not configured on this control plane")
	}
	st, err := s.pathSite(c)
	if err != nil {
		return response{}, err
	}
	name := st.Metadata.Name
	switch {
	case st.Metadata.DeletionRequested != nil || st.Status.Phase == site.PhaseDeleting:
		return response{}, errorf(http.StatusConflict, CodeConflict, "site %q is being deleted", name)
	case st.Spec.Suspended || st.Status.Phase == site.PhaseSuspended:
		return response{}, errorf(http.StatusConflict, CodeConflict, "site %q is suspended: resume it to sign in to wp-admin", name)
	case st.Status.Phase == site.PhasePending || st.Status.Phase == site.PhaseCreating || st.Status.Phase == "":
		return response{}, errorf(http.StatusConflict, CodeConflict, "site %q is not serving yet (phase %s)", name, st.Status.Phase)
	}
	user := st.Spec.Admin.User
	if user == "" {
		return response{}, errorf(http.StatusConflict, CodeConflict, "site %q has no administrator to sign in as", name)
	}
	// A site served over HTTPS (it redirects there, and the edges have an
	// HTTPS listener) gets an https:// link whose token works over TLS
	// only; any other gets its plain public URL.
	base, tls := s.cfg.PublicURL(st.Spec.Domain), false
	if st.Spec.HTTPSRedirect && s.cfg.PublicHTTPSURL != nil {
		base, tls = s.cfg.PublicHTTPSURL(st.Spec.Domain), true
	}
	base = strings.TrimSuffix(base, "/")
	token, exp, err := loginlink.New(s.cfg.LoginKey(st.Metadata.UID), st.Metadata.UID, user, tls, s.cfg.Clock())
	if err != nil {
		return response{}, internal(err)
	}
	c.detail = "user " + user
	return response{status: http.StatusOK, body: LoginLink{
		URL: base + "/?" + url.Values{loginlink.Param: {token}}.Encode(), ExpiresAt: exp, User: user,
	}}, nil
}

// LoginKey is the body of GET /v1/agent/sites/{name}/login-key: the
// site's login key, which its shard writes into wp-config.php for the
// aipress-login mu-plugin.
type LoginKey struct {
	UID string `json:"uid"`
	Key []byte `json:"key"`
}

// agentLoginKey gives a site's login key to the shard that hosts it (or
// is the target of its move), and to no other: a shard learns the keys of
// its own sites only.
func (s *server) agentLoginKey(c *call) (response, error) {
	if s.cfg.LoginKey == nil {
		return response{}, errorf(http.StatusNotImplemented, CodeUnimplemented, "sign-in links are not configured on this control plane")
	}
	st, err := s.pathSite(c)
	if err != nil {
		return response{}, err
	}
	name := st.Metadata.Name
	shard := c.token.Subject
	if !slices.Contains(st.Shards(), shard) {
		return response{}, errorf(http.StatusForbidden, CodeForbidden, "site %q is not on shard %q", name, shard)
	}
	return response{status: http.StatusOK, body: LoginKey{UID: st.Metadata.UID, Key: s.cfg.LoginKey(st.Metadata.UID)}}, nil
}
