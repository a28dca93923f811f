package api

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/aipress/aipress/internal/store"
)

// PurgeRequest is the body of POST /v1/sites/{name}/purge: at most one of
// URL and Tag; neither (or no body) purges the whole site.
type PurgeRequest struct {
	// URL is an absolute URL on the site's domain, or a path resolved
	// against the site's URL.
	URL string `json:"url,omitempty"`
	// Tag is a cache tag: home, feed, archive, post-<ID>, term-<ID>.
	Tag string `json:"tag,omitempty"`
}

// PurgeResponse is the 200 body of POST /v1/sites/{name}/purge.
type PurgeResponse struct {
	Purged int `json:"purged"` // cached objects removed
}

// purgeTagRE matches the tags the edge accepts.
var purgeTagRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

func (s *server) purgeSite(c *call) (response, error) {
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	var req PurgeRequest
	if err := decodeOptionalJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if req.URL != "" && req.Tag != "" {
		return response{}, badRequest("give url or tag, not both")
	}
	if req.Tag != "" && !purgeTagRE.MatchString(req.Tag) {
		return response{}, badRequest("tag %q: use up to 128 letters, digits, '_', '.', ':' or '-'", req.Tag)
	}
	st, err := s.cfg.Store.GetSite(c.r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, siteNotFound(name)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("get site %q: %w", name, err))
	}
	if s.cfg.Purger == nil {
		return response{}, errorf(http.StatusNotImplemented, CodeUnimplemented, "this platform has no page cache to purge")
	}
	var n int
	switch {
	case req.URL != "":
		base := st.Status.URL
		if base == "" {
			base = s.cfg.PublicURL(st.Spec.Domain)
		}
		u, err := ResolvePurgeURL(base, st.Spec.Domain, req.URL)
		if err != nil {
			return response{}, badRequest("%v", err)
		}
		n = s.cfg.Purger.PurgeURL(name, u)
	case req.Tag != "":
		n = s.cfg.Purger.PurgeTag(name, req.Tag)
	default:
		n = s.cfg.Purger.PurgeSite(name)
	}
	return response{status: http.StatusOK, body: PurgeResponse{Purged: n}}, nil
}

// ResolvePurgeURL resolves raw (an absolute URL or a path) against the
// site's URL base and checks that it names a page of domain.
func ResolvePurgeURL(base, domain, raw string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("site URL %q: %w", base, err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Scheme == "" && u.Host == "" && !strings.HasPrefix(u.Path, "/") {
		return "", fmt.Errorf("url %q: give an absolute URL or a path starting with /", raw)
	}
	u = b.ResolveReference(u)
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("url %q: scheme must be http or https", raw)
	}
	host := u.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !strings.EqualFold(host, domain) {
		return "", fmt.Errorf("url %q is not on %s", raw, domain)
	}
	u.Fragment = ""
	return u.String(), nil
}

// decodeOptionalJSON decodes a JSON body into v; an empty body leaves v
// zero.
func decodeOptionalJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return badRequest("read body: %v", err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	return decodeJSON(r, v)
}
