// Package purge is the edge's purge endpoint: WordPress (the aipress-cache
// must-use plugin) posts the cache tags of changed content to
// POST /.aipress/purge on the edge's loopback address, with the site's Host,
// and the endpoint hands them to the page cache (an edge.Purger).
//
// Only loopback peers are served, and only with the site's purge key: the
// hex HMAC-SHA256 of the site name under the edge's purge secret (Key), which
// the shard writes into that site's wp-config.php. One site's key cannot
// purge another site. Every refusal is a bare 403; the reason is logged.
package purge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/aipress/aipress/internal/edge"
)

// Wire names shared with the mu-plugin and the page cache.
const (
	// Path is the endpoint's path on every Serving site's host.
	Path = "/.aipress/purge"
	// KeyHeader carries the site's purge key (Key).
	KeyHeader = "X-AIPress-Purge-Key"
	// TagsHeader is the response header in which WordPress lists a page's
	// cache tags, separated by commas and optional spaces ("home, post-12").
	TagsHeader = "X-AIPress-Tags"
)

// Limits of one purge request.
const (
	MaxBodyBytes = 64 << 10
	MaxItems     = 1000 // tags plus URLs
	SecretBytes  = 32
)

// Request is the JSON body of POST /.aipress/purge. All purges the whole
// site; otherwise every tag and every URL is purged. URLs may be absolute
// (their host must be the site's) or paths, resolved against the request's
// host.
type Request struct {
	Tags []string `json:"tags,omitempty"`
	URLs []string `json:"urls,omitempty"`
	All  bool     `json:"all,omitempty"`
}

// Response is the 200 body: how many cached objects were removed.
type Response struct {
	Purged int `json:"purged"`
}

// tagRE is what a tag may look like (the plugin sends post-12, term-3, home,
// feed, archive; other producers may add their own).
var tagRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// Key returns the purge key of site: hex(HMAC-SHA256(secret, site)).
func Key(secret []byte, site string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(site))
	return hex.EncodeToString(m.Sum(nil))
}

// LoadOrCreateSecret returns the purge secret kept at path (SecretBytes
// random bytes, mode 0600), creating it on first use. A file of the wrong
// size is an error, not silently replaced: every site's key derives from it.
func LoadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b = make([]byte, SecretBytes)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("purge secret: %w", err)
		}
		// Written aside and linked into place: a crash leaves either no
		// secret or a whole one, never a short file that blocks start-up.
		tmp, err := os.CreateTemp(filepath.Dir(path), ".purge-secret-*")
		if err != nil {
			return nil, fmt.Errorf("purge secret: %w", err)
		}
		defer os.Remove(tmp.Name())
		if _, err := tmp.Write(b); err != nil {
			tmp.Close()
			return nil, fmt.Errorf("purge secret: %w", err)
		}
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return nil, fmt.Errorf("purge secret: %w", err)
		}
		if err := tmp.Close(); err != nil {
			return nil, fmt.Errorf("purge secret: %w", err)
		}
		if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
			return LoadOrCreateSecret(path) // created concurrently
		} else if err != nil {
			return nil, fmt.Errorf("purge secret: %w", err)
		}
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("purge secret: %w", err)
	}
	if len(b) != SecretBytes {
		return nil, fmt.Errorf("purge secret %s: %d bytes, want %d", path, len(b), SecretBytes)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("purge secret: %w", err)
	}
	return b, nil
}

// Nop is a Purger for an edge without a page cache: nothing is cached, so
// every purge removes nothing.
type Nop struct{}

func (Nop) PurgeURL(string, string) int { return 0 }
func (Nop) PurgeTag(string, string) int { return 0 }
func (Nop) PurgeSite(string) int        { return 0 }

var _ edge.Purger = Nop{}

// Middleware answers POST /.aipress/purge for every Serving route and passes
// every other request on. Put it first (outermost) in edge.Config.Middlewares
// so the purge request never reaches the WAF, the cache or PHP. A nil
// purger is Nop; a nil log discards.
func Middleware(secret []byte, purger edge.Purger, log *slog.Logger) edge.Middleware {
	secret = append([]byte(nil), secret...)
	return middleware(func(site, key string) bool {
		return hmac.Equal([]byte(key), []byte(Key(secret, site)))
	}, purger, log)
}

// KeyringMiddleware is Middleware with the keys of a Keyring: during a
// rotation of the purge secret, keys under the previous secret are
// accepted too.
func KeyringMiddleware(k *Keyring, purger edge.Purger, log *slog.Logger) edge.Middleware {
	return middleware(k.Check, purger, log)
}

func middleware(check func(site, key string) bool, purger edge.Purger, log *slog.Logger) edge.Middleware {
	if purger == nil {
		purger = Nop{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(next edge.RouteHandler) edge.RouteHandler {
		return func(w http.ResponseWriter, r *http.Request, rt *edge.Route) error {
			if r.URL.Path != Path {
				return next(w, r, rt)
			}
			h := &handler{check: check, purger: purger, log: log}
			h.serve(w, r, rt)
			return nil
		}
	}
}

type handler struct {
	check  func(site, key string) bool
	purger edge.Purger
	log    *slog.Logger
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, rt *edge.Route) {
	attrs := []any{"site", rt.Site, "remote", r.RemoteAddr}
	if info := edge.InfoFrom(r.Context()); info != nil {
		attrs = append(attrs, "request_id", info.ID)
	}
	if reason := h.refuse(r, rt); reason != "" {
		h.log.Warn("edge: purge refused", append(attrs, "reason", reason)...)
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "forbidden"})
		return
	}
	var req Request
	if err := decode(w, r, &req); err != nil {
		h.log.Warn("edge: purge refused", append(attrs, "reason", "bad body", "err", err)...)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request"})
		return
	}
	urls, err := resolveURLs(req.URLs, r, rt)
	if err != nil {
		h.log.Warn("edge: purge refused", append(attrs, "reason", "bad url", "err", err)...)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request"})
		return
	}
	n := 0
	if req.All {
		n = h.purger.PurgeSite(rt.Site)
	} else {
		for _, t := range req.Tags {
			n += h.purger.PurgeTag(rt.Site, t)
		}
		for _, u := range urls {
			n += h.purger.PurgeURL(rt.Site, u)
		}
	}
	shown := req.Tags
	if len(shown) > 20 {
		shown = shown[:20]
	}
	h.log.Info("edge: purge", append(attrs, "all", req.All, "tags", len(req.Tags), "urls", len(urls),
		"purged", n, "tag_list", strings.Join(shown, ","))...)
	writeJSON(w, http.StatusOK, Response{Purged: n})
}

// refuse returns why r may not purge rt's site, or "" if it may.
func (h *handler) refuse(r *http.Request, rt *edge.Route) string {
	if r.Method != http.MethodPost {
		return "method " + r.Method
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "not loopback"
	}
	got := r.Header.Get(KeyHeader)
	if got == "" {
		return "no key"
	}
	if !h.check(rt.Site, got) {
		return "wrong key"
	}
	return ""
}

func decode(w http.ResponseWriter, r *http.Request, req *Request) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	if len(req.Tags)+len(req.URLs) > MaxItems {
		return fmt.Errorf("%d items, at most %d", len(req.Tags)+len(req.URLs), MaxItems)
	}
	for _, t := range req.Tags {
		if !tagRE.MatchString(t) {
			return fmt.Errorf("invalid tag %q", t)
		}
	}
	return nil
}

// resolveURLs makes every URL absolute against the request's scheme and
// host, and refuses URLs of other hosts.
func resolveURLs(raw []string, r *http.Request, rt *edge.Route) ([]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	base := &url.URL{Scheme: scheme, Host: r.Host, Path: "/"}
	out := make([]string, 0, len(raw))
	for _, s := range raw {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("url %q: %w", s, err)
		}
		u = base.ResolveReference(u)
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("url %q: scheme %q", s, u.Scheme)
		}
		if !sameHost(u.Host, rt.Host) {
			return nil, fmt.Errorf("url %q: host is not %s", s, rt.Host)
		}
		u.Fragment = ""
		out = append(out, u.String())
	}
	return out, nil
}

// sameHost compares host names without ports, case-insensitively.
func sameHost(a, b string) bool {
	strip := func(h string) string {
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
		return strings.TrimSuffix(h, ".")
	}
	return strings.EqualFold(strip(a), strip(b))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
