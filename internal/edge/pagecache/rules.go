package pagecache

import (
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/edge"
)

// TagsHeader is the response header PHP uses to tag a page with surrogate
// keys ("post-12, home term-3"); the cache indexes and strips it.
const TagsHeader = "X-Aipress-Tags"

// Limits on the tags of one page, so a misbehaving plugin cannot blow up
// the index.
const (
	maxTags   = 256
	maxTagLen = 128
)

// trackingParams are query parameters that never change a WordPress page;
// they are dropped from the key (utm_* by prefix).
var trackingParams = map[string]bool{
	"fbclid": true, "gclid": true, "dclid": true, "msclkid": true, "mc_cid": true, "mc_eid": true,
	"_ga": true, "_gl": true, "yclid": true, "igshid": true, "ref_src": true,
}

// queryPair is one key=value pair of a query, decoded.
type queryPair struct{ k, v string }

// keptPairs returns the pairs of a raw query that matter to the key, in
// their order, decoded (a part that does not decode is kept as sent): it
// drops empty parts, pairs with an empty key and tracking parameters.
func keptPairs(raw string) []queryPair {
	var pairs []queryPair
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		if dv, err := url.QueryUnescape(v); err == nil {
			v = dv
		}
		lk := strings.ToLower(k)
		if k == "" || trackingParams[lk] || strings.HasPrefix(lk, "utm_") {
			continue
		}
		pairs = append(pairs, queryPair{k, v})
	}
	return pairs
}

func encodePairs(pairs []queryPair) string {
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.v))
	}
	return b.String()
}

// normalizeQuery drops tracking parameters and empty pairs and sorts the
// rest by key, re-encoding keys and values canonically.
func normalizeQuery(raw string) string {
	if raw == "" {
		return ""
	}
	pairs := keptPairs(raw)
	// By key only, stably: values of one key keep their order, which PHP
	// gives meaning to (the last ?p= wins; a[]= lists are ordered).
	slices.SortStableFunc(pairs, func(a, b queryPair) int { return strings.Compare(a.k, b.k) })
	return encodePairs(pairs)
}

// keyedRequest returns r as PHP sees it on a request the cache may store:
// the query and REQUEST_URI spelled as the key spells them — without the
// tracking parameters, empty pairs and pairs without a key that the key
// ignores, each pair and the path percent-encoded canonically, the order
// kept. Two requests that share a key therefore show PHP the same URL up to
// the order of different parameters, so nothing the key leaves out (a
// reflected utm_source, a raw "<" the key spells %3C) can end up in a page
// served to everyone. r itself is returned when it already reads so.
func keyedRequest(r *http.Request) *http.Request {
	query := r.URL.RawQuery
	if query != "" {
		query = encodePairs(keptPairs(query))
	}
	escPath := r.URL.EscapedPath()
	if escPath == "" {
		escPath = "/"
	}
	reqPath, _, _ := strings.Cut(r.RequestURI, "?")
	if query == r.URL.RawQuery && (r.RequestURI == "" || reqPath == escPath) && !r.URL.ForceQuery {
		return r
	}
	out := new(http.Request)
	*out = *r
	u := *r.URL
	u.RawQuery, u.ForceQuery = query, false
	out.URL = &u
	if r.RequestURI != "" {
		out.RequestURI = escPath
		if query != "" {
			out.RequestURI += "?" + query
		}
	}
	return out
}

// resourceKey is the part of a key every scheme and port share: escaped
// path and normalised query. PurgeURL finds entries by it.
func resourceKey(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if q := normalizeQuery(u.RawQuery); q != "" {
		return p + "?" + q
	}
	return p
}

// Key returns the cache key of r for route rt: scheme, host (the route's
// host name, lower-cased, with the port from the Host header) and the
// resource key. HEAD and GET share keys.
func Key(r *http.Request, rt *edge.Route) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + keyHost(r, rt) + resourceKey(r.URL)
}

func keyHost(r *http.Request, rt *edge.Route) string {
	host := strings.TrimSuffix(strings.ToLower(rt.Host), ".")
	if host == "" {
		host = strings.ToLower(r.Host)
	}
	if i := strings.LastIndexByte(r.Host, ':'); i >= 0 && !strings.Contains(r.Host[i:], "]") {
		if port := r.Host[i+1:]; port != "" && isDigits(port) {
			host += ":" + port
		}
	}
	return host
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// bypassCookie reports whether a cookie name marks a visitor whose pages
// must not come from or go to the cache: logged in, password-protected
// post, comment author, cart.
func bypassCookie(name string) bool {
	switch {
	case name == "wordpress_test_cookie":
		return false
	case strings.HasPrefix(name, "wordpress_"), // logged_in_, sec_, auth [hash], no_cache
		strings.HasPrefix(name, "wp-postpass_"),
		strings.HasPrefix(name, "comment_author_"),
		strings.HasPrefix(name, "woocommerce_items_in_cart"),
		strings.HasPrefix(name, "woocommerce_cart_hash"),
		strings.HasPrefix(name, "wp_woocommerce_session_"):
		return true
	}
	return false
}

// staticExt are extensions of files the edge serves from disk; caching
// them in memory would only compete with pages for the budget.
var staticExt = map[string]bool{
	".css": true, ".js": true, ".mjs": true, ".map": true, ".png": true, ".jpg": true, ".jpeg": true,
	".gif": true, ".webp": true, ".avif": true, ".svg": true, ".ico": true, ".bmp": true, ".tif": true,
	".tiff": true, ".woff": true, ".woff2": true, ".ttf": true, ".otf": true, ".eot": true,
	".mp4": true, ".webm": true, ".ogg": true, ".mp3": true, ".wav": true, ".m4a": true, ".mov": true,
	".pdf": true, ".zip": true, ".gz": true, ".tar": true,
}

// BypassReason returns why r must bypass the cache for route rt, or "" if
// it may be served from and stored in the cache. cacheFeeds allows feeds
// and sitemaps.
func BypassReason(r *http.Request, rt *edge.Route, cacheFeeds bool) string {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return "method"
	}
	if rt.Options.CacheTTL <= 0 {
		return "disabled"
	}
	if r.Header.Get("Authorization") != "" {
		return "authorization"
	}
	upath := r.URL.Path
	if upath == "" || upath[0] != '/' {
		upath = "/" + upath
	}
	// The rules look at the path the edge will serve (cleaned), in lower
	// case, so /WP-ADMIN/ or //wp-admin/./ cannot sneak past them.
	p := strings.ToLower(path.Clean(upath))
	if p == "/wp-admin" || strings.HasPrefix(p, "/wp-admin/") {
		return "admin"
	}
	if script := phpScript(p); script != "" && script != "/index.php" {
		return "php-script"
	}
	if p == "/wp-json" || strings.HasPrefix(p, "/wp-json/") ||
		p == "/index.php/wp-json" || strings.HasPrefix(p, "/index.php/wp-json/") {
		return "rest"
	}
	var q url.Values // nil for no query: Has answers false without parsing
	if r.URL.RawQuery != "" {
		q = r.URL.Query()
	}
	if q.Has("rest_route") {
		return "rest"
	}
	if q.Has("preview") || q.Has("preview_id") || q.Has("preview_nonce") {
		return "preview"
	}
	if !cacheFeeds {
		base := path.Base(p)
		if p == "/feed" || strings.HasSuffix(p, "/feed") || strings.Contains(p+"/", "/feed/") || q.Has("feed") {
			return "feed"
		}
		if strings.Contains(base, "sitemap") && strings.HasSuffix(base, ".xml") {
			return "sitemap"
		}
	}
	if staticExt[path.Ext(p)] {
		return "static"
	}
	for _, c := range r.Cookies() {
		if bypassCookie(c.Name) {
			return "cookie"
		}
	}
	return ""
}

// phpScript returns the first path prefix ending in a segment that ends in
// ".php" (the script the edge would run, PATH_INFO aside), or "".
func phpScript(p string) string {
	for i := 0; i < len(p); {
		j := strings.IndexByte(p[i+1:], '/')
		end := len(p)
		if j >= 0 {
			end = i + 1 + j
		}
		if strings.HasSuffix(p[:end], ".php") {
			return p[:end]
		}
		if j < 0 {
			return ""
		}
		i = end
	}
	return ""
}

// Max404TTL caps how long a 404 is kept.
const Max404TTL = time.Minute

// StorableTTL decides whether a response with status and header may be
// stored for a route whose TTL is ttl. It returns the TTL to use, or 0 and
// the reason it may not be stored.
func StorableTTL(status int, h http.Header, ttl time.Duration, maxObject int64) (time.Duration, string) {
	switch status {
	case http.StatusOK, http.StatusMovedPermanently:
	case http.StatusNotFound:
		ttl = min(ttl, Max404TTL)
	default:
		return 0, "status"
	}
	if len(h.Values("Set-Cookie")) > 0 {
		return 0, "set-cookie"
	}
	sharedMaxAge, maxAge := -1, -1
	for _, line := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(line, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			name = strings.ToLower(strings.TrimSpace(name))
			val = strings.Trim(strings.TrimSpace(val), `"`)
			switch name {
			case "private", "no-store", "no-cache":
				return 0, "cache-control"
			case "s-maxage":
				if n, err := strconv.Atoi(val); err == nil {
					sharedMaxAge = n
				}
			case "max-age":
				if n, err := strconv.Atoi(val); err == nil {
					maxAge = n
				}
			}
		}
	}
	if sharedMaxAge < 0 {
		sharedMaxAge = maxAge
	}
	if sharedMaxAge >= 0 {
		ttl = min(ttl, time.Duration(sharedMaxAge)*time.Second)
	}
	for _, line := range h.Values("Vary") {
		for v := range strings.SplitSeq(line, ",") {
			// The key holds no request header: a page that varies on
			// anything but the encoding (language, device, origin) would be
			// served to everyone in the first visitor's variant.
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "", "accept-encoding":
			default:
				return 0, "vary"
			}
		}
	}
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n > maxObject {
			return 0, "too-large"
		}
	}
	if ttl <= 0 {
		return 0, "ttl"
	}
	return ttl, ""
}

// parseTags splits a tags header value on commas and white space.
func parseTags(values []string) []string {
	var tags []string
	for _, v := range values {
		for _, t := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			if len(t) > maxTagLen || slices.Contains(tags, t) {
				continue
			}
			if len(tags) == maxTags {
				return tags
			}
			tags = append(tags, t)
		}
	}
	return tags
}

// acceptsEncoding reports whether r's Accept-Encoding allows enc.
func acceptsEncoding(r *http.Request, enc string) bool {
	enc = strings.ToLower(strings.TrimSpace(enc))
	if enc == "" || enc == "identity" {
		return true
	}
	for _, line := range r.Header.Values("Accept-Encoding") {
		for item := range strings.SplitSeq(line, ",") {
			name, params, _ := strings.Cut(item, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name != enc && name != "*" {
				continue
			}
			q := strings.ReplaceAll(strings.ToLower(params), " ", "")
			if q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000" {
				continue
			}
			return true
		}
	}
	return false
}
