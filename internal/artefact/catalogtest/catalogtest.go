// Package catalogtest serves a wordpress.org-compatible catalogue for
// tests: a local HTTP server that answers the plugin and theme information
// APIs and the core version check in their real formats (see package
// artefact's catalogue.go) and serves the zips, built from fixtures.
//
//	cat := catalogtest.New(t)
//	cat.AddFixtures()                                // the plugins below
//	cat.AddPlugin("my-plugin", "1.0", map[string]string{"my-plugin.php": "<?php\n/* Plugin Name: Mine */"})
//	store, _ := artefact.Open(artefact.Config{Dir: dir, Catalogue: cat.Catalogue()})
//
// # Fixtures
//
// Real, small plugins and a theme that parts of the code issue test with,
// by name (PluginFiles, ThemeFiles and HostileZip build them; AddFixtures
// serves them all):
//
//   - aipress-hello 1.0 and 2.0 (HelloPlugin): prints Marker(HelloPlugin,
//     version) — "aipress-hello 1.0" — in wp_footer; its activation hook
//     sets the option aipress_hello_activated to its version, its
//     deactivation hook deletes it.
//   - aipress-fatal 1.0 (FatalPlugin): fatal on activation (its activation
//     hook calls an undefined function); harmless once loaded otherwise.
//   - aipress-broken 1.0 and 2.0 (BrokenPlugin): 1.0 prints
//     "aipress-broken 1.0" in wp_footer; 2.0 activates fine but fatals on
//     every front-end request (template_redirect calls an undefined
//     function): the home page answers 500 and the PHP error log gets a
//     fatal, wp-admin, the REST API and the CLI keep working.
//   - aipress-theme 1.0 and 2.0 (TestTheme): a classic theme (style.css,
//     index.php printing Marker(TestTheme, version) and calling wp_head and
//     wp_footer, functions.php).
//   - hostile plugins, each version 1.0, refused by the artefact store:
//     aipress-slip (SlipPlugin: an entry aipress-slip/../../aipress-slip.php),
//     aipress-symlink (SymlinkPlugin: aipress-symlink/passwd, a symbolic
//     link to /etc/passwd), aipress-outside (OutsidePlugin: aipress-outside.php
//     beside the root folder).
package catalogtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aipress/aipress/internal/artefact"
)

// Server is a catalogue for tests (New) and benchmarks (Start). Its
// methods are safe for concurrent use.
type Server struct {
	t   testing.TB // nil when started by Start
	srv *httptest.Server

	mu       sync.Mutex
	plugins  map[string]map[string][]byte // slug → version → zip
	themes   map[string]map[string][]byte
	cores    map[string][]byte // version → zip
	raw      map[string][]byte // path → body
	requests []string
}

// New starts a catalogue on a loopback address, closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := Start()
	s.t = t
	t.Cleanup(s.Close)
	return s
}

// Start starts a catalogue on a loopback address outside a test (a
// benchmark serving its own catalogue); the caller closes it with Close.
// AddCore panics on an error where a test's would fail the test.
func Start() *Server {
	s := &Server{plugins: map[string]map[string][]byte{}, themes: map[string]map[string][]byte{},
		cores: map[string][]byte{}, raw: map[string][]byte{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Close stops the server (New's test does it when it ends).
func (s *Server) Close() { s.srv.Close() }

// URL is the catalogue's base URL (what --catalogue-url takes).
func (s *Server) URL() string { return s.srv.URL }

// Catalogue is a client of this catalogue.
func (s *Server) Catalogue() *artefact.Catalogue {
	return &artefact.Catalogue{API: s.srv.URL, Client: s.srv.Client()}
}

// AddPlugin serves plugin slug at version, its files (paths relative to
// the plugin's folder) zipped under slug/. It returns the zip's SHA-256.
func (s *Server) AddPlugin(slug, version string, files map[string]string) string {
	return s.AddPluginZip(slug, version, Zip(slug, files))
}

// AddPluginZip serves zip as plugin slug at version (a hostile archive,
// say). It returns the zip's SHA-256.
func (s *Server) AddPluginZip(slug, version string, zip []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plugins[slug] == nil {
		s.plugins[slug] = map[string][]byte{}
	}
	s.plugins[slug][version] = zip
	return SHA256(zip)
}

// AddTheme serves theme slug at version, its files zipped under slug/. It
// returns the zip's SHA-256.
func (s *Server) AddTheme(slug, version string, files map[string]string) string {
	return s.AddThemeZip(slug, version, Zip(slug, files))
}

// AddThemeZip serves zip as theme slug at version.
func (s *Server) AddThemeZip(slug, version string, zip []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.themes[slug] == nil {
		s.themes[slug] = map[string][]byte{}
	}
	s.themes[slug][version] = zip
	return SHA256(zip)
}

// AddCore serves the WordPress tree at dir (/usr/share/wordpress, say) as
// core version, zipped under wordpress/ (see CoreZip: links are followed,
// wp-includes/version.php says version). It returns the zip's SHA-256.
func (s *Server) AddCore(version string, tree string) string {
	zip, err := CoreZip(version, tree)
	if err != nil {
		if s.t == nil {
			panic(fmt.Sprintf("catalogtest: core %s from %s: %v", version, tree, err))
		}
		s.t.Helper()
		s.t.Fatalf("catalogtest: core %s from %s: %v", version, tree, err)
	}
	return s.AddCoreZip(version, zip)
}

// AddCoreZip serves zip as core version.
func (s *Server) AddCoreZip(version string, zip []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cores[version] = zip
	return SHA256(zip)
}

// AddRaw serves body at path (a zip source's URL: URL()+path), returning
// that URL.
func (s *Server) AddRaw(path string, zip []byte) string {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw[path] = zip
	return s.srv.URL + path
}

// Requests are the requests served so far, as "GET /path?query".
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Count is how many requests so far had a path starting with prefix.
func (s *Server) Count(prefix string) int {
	n := 0
	for _, r := range s.Requests() {
		if _, p, _ := strings.Cut(r, " "); strings.HasPrefix(p, prefix) {
			n++
		}
	}
	return n
}

// PluginURL, ThemeURL and CoreURL are where the catalogue serves a
// version's zip.
func (s *Server) PluginURL(slug, version string) string {
	return s.srv.URL + "/plugin/" + slug + "." + version + ".zip"
}

func (s *Server) ThemeURL(slug, version string) string {
	return s.srv.URL + "/theme/" + slug + "." + version + ".zip"
}

func (s *Server) CoreURL(version string) string {
	return s.srv.URL + "/release/wordpress-" + version + ".zip"
}

var (
	pluginZipRE = regexp.MustCompile(`^/plugin/([a-z0-9._-]+?)\.([0-9A-Za-z.+_-]+)\.zip$`)
	themeZipRE  = regexp.MustCompile(`^/theme/([a-z0-9._-]+?)\.([0-9A-Za-z.+_-]+)\.zip$`)
	coreZipRE   = regexp.MustCompile(`^/release/wordpress-([0-9A-Za-z.+_-]+)\.zip$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	line := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		line += "?" + r.URL.RawQuery
	}
	s.mu.Lock()
	s.requests = append(s.requests, line)
	s.mu.Unlock()
	q := r.URL.Query()
	switch p := r.URL.Path; {
	case p == "/plugins/info/1.2/" || p == "/plugins/info/1.2":
		s.pluginInfo(w, q.Get("action"), q.Get("request[slug]"))
	case p == "/themes/info/1.2/" || p == "/themes/info/1.2":
		s.themeInfo(w, q.Get("action"), q.Get("request[slug]"), truthy(q.Get("request[fields][versions]")))
	case p == "/core/version-check/1.7/" || p == "/core/version-check/1.7":
		s.versionCheck(w)
	default:
		s.mu.Lock()
		body, ok := s.raw[p]
		if !ok {
			if m := pluginZipRE.FindStringSubmatch(p); m != nil {
				body, ok = s.plugins[m[1]][m[2]]
			} else if m := themeZipRE.FindStringSubmatch(p); m != nil {
				body, ok = s.themes[m[1]][m[2]]
			} else if m := coreZipRE.FindStringSubmatch(p); m != nil {
				body, ok = s.cores[m[1]]
			}
		}
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}
}

func truthy(v string) bool { return v != "" && v != "0" && v != "false" }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// newest returns the versions of m, newest first.
func newest(m map[string][]byte) []string {
	vs := make([]string, 0, len(m))
	for v := range m {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, func(a, b string) int { return CompareVersions(b, a) })
	return vs
}

func (s *Server) pluginInfo(w http.ResponseWriter, action, slug string) {
	if action != "plugin_information" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Action not implemented. <a href='https://codex.wordpress.org/WordPress.org_API'>API Docs</a>"})
		return
	}
	s.mu.Lock()
	vs := newest(s.plugins[slug])
	s.mu.Unlock()
	if len(vs) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Plugin not found."})
		return
	}
	versions := map[string]string{"trunk": s.srv.URL + "/plugin/" + slug + ".zip"}
	for _, v := range vs {
		versions[v] = s.PluginURL(slug, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name":          slug,
		"slug":          slug,
		"version":       vs[0],
		"author":        "<a href=\"https://aipress.invalid/\">AIPress tests</a>",
		"requires":      "6.0",
		"tested":        "6.1",
		"requires_php":  "7.4",
		"rating":        100,
		"num_ratings":   1,
		"last_updated":  "2026-01-01 12:00am GMT",
		"homepage":      "https://aipress.invalid/" + slug,
		"sections":      map[string]string{"description": "<p>A test fixture.</p>"},
		"download_link": s.PluginURL(slug, vs[0]),
		"tags":          map[string]string{},
		"versions":      versions,
	})
}

func (s *Server) themeInfo(w http.ResponseWriter, action, slug string, withVersions bool) {
	if action != "theme_information" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Action not implemented. <a href='https://codex.wordpress.org/WordPress.org_API'>API Docs</a>"})
		return
	}
	s.mu.Lock()
	vs := newest(s.themes[slug])
	s.mu.Unlock()
	if len(vs) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Theme not found"})
		return
	}
	res := map[string]any{
		"name":           slug,
		"slug":           slug,
		"version":        vs[0],
		"preview_url":    "https://wp-themes.com/" + slug + "/",
		"author":         map[string]string{"user_nicename": "aipress", "display_name": "AIPress tests"},
		"screenshot_url": "",
		"rating":         100,
		"num_ratings":    1,
		"homepage":       "https://aipress.invalid/" + slug,
		"sections":       map[string]string{"description": "A test fixture."},
		"download_link":  s.ThemeURL(slug, vs[0]),
		"requires":       "6.0",
		"requires_php":   "7.4",
		"last_updated":   "2026-01-01",
	}
	if withVersions {
		versions := map[string]string{}
		for _, v := range vs {
			versions[v] = s.ThemeURL(slug, v)
		}
		res["versions"] = versions
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) versionCheck(w http.ResponseWriter) {
	s.mu.Lock()
	vs := newest(s.cores)
	s.mu.Unlock()
	offers := []map[string]any{}
	for i, v := range vs {
		response := "autoupdate"
		if i == 0 {
			response = "upgrade"
		}
		dl := s.CoreURL(v)
		offers = append(offers, map[string]any{
			"response": response,
			"download": dl,
			"locale":   "en_US",
			"packages": map[string]any{"full": dl, "no_content": false, "new_bundled": false, "partial": false, "rollback": false},
			"current":  v, "version": v,
			"php_version": "7.0.0", "mysql_version": "5.0", "new_bundled": "6.4", "partial_version": false,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"offers": offers, "translations": []any{}})
}

// CompareVersions compares versions as PHP's version_compare roughly does
// for release numbers: dot-separated parts, numerically where both are
// numbers. It returns -1, 0 or 1.
func CompareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		x, y := "0", "0"
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		nx, ex := strconv.Atoi(x)
		ny, ey := strconv.Atoi(y)
		switch {
		case ex == nil && ey == nil && nx != ny:
			if nx < ny {
				return -1
			}
			return 1
		case (ex != nil || ey != nil) && x != y:
			return strings.Compare(x, y)
		}
	}
	return 0
}

// Marker is what a fixture prints on the site's pages: "<slug> <version>".
func Marker(slug, version string) string { return fmt.Sprintf("%s %s", slug, version) }
