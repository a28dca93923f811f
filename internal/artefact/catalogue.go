package artefact

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
)

// The catalogue speaks wordpress.org's real formats, as WordPress itself
// calls them (wp-admin/includes/plugin-install.php plugins_api,
// wp-admin/includes/theme.php themes_api, wp-includes/update.php
// wp_version_check):
//
//   - GET {API}/plugins/info/1.2/?action=plugin_information&request[slug]=S
//     answers a JSON object with "name", "slug", "version" (the newest),
//     "download_link" (its zip) and "versions" (an object: version → zip
//     URL, with "trunk"; an empty PHP array [] when there are none).
//     An unknown slug: 404 and {"error":"Plugin not found."}.
//   - GET {API}/themes/info/1.2/?action=theme_information&request[slug]=S
//     answers "name", "slug", "version", "download_link"
//     (https://downloads.wordpress.org/theme/S.VERSION.zip); "versions"
//     only when asked for (request[fields][versions]). Older versions are
//     S.VERSION.zip beside the newest's download_link. An unknown slug:
//     {"error":"Theme not found"}.
//   - GET {API}/core/version-check/1.7/ answers {"offers":[{"response":
//     "upgrade","download":"https://downloads.wordpress.org/release/
//     wordpress-6.5.zip","packages":{"full":...},"current":"6.5",
//     "version":"6.5",...},...]}, the newest first. Any other version is
//     {downloads}/release/wordpress-{version}.zip on the downloads host.
//
// Catalogue is a client of a wordpress.org-compatible catalogue: the plugin
// and theme information APIs (/plugins/info/1.2/, /themes/info/1.2/) and
// the core version check (/core/version-check/1.7/).
type Catalogue struct {
	// API is the catalogue's base URL (https://api.wordpress.org).
	API string
	// Downloads is the base URL of core releases
	// ({Downloads}/release/wordpress-{version}.zip); "" takes the host of
	// the version check's newest offer, else https://downloads.wordpress.org.
	Downloads string
	Client    *http.Client
}

// DefaultCatalogueURL is wordpress.org's API.
const DefaultCatalogueURL = "https://api.wordpress.org"

// Info is what the catalogue says of one version of a plugin, theme or
// core.
type Info struct {
	Name        string
	Version     string // resolved ("latest" → the newest)
	DownloadURL string
}

// maxInfoBytes bounds a catalogue answer (a popular plugin's information,
// with its changelog and every version, is a few hundred KiB).
const maxInfoBytes = 32 << 20

func latest(v string) bool { return v == "" || v == "latest" }

// Info asks about kind.
func (c *Catalogue) Info(ctx context.Context, kind Kind, name, version string) (*Info, error) {
	switch kind {
	case Plugin:
		return c.Plugin(ctx, name, version)
	case Theme:
		return c.Theme(ctx, name, version)
	case Core:
		return c.Core(ctx, name, version)
	}
	return nil, fmt.Errorf("catalogue: kind %q", kind)
}

// extensionInfo is the part of a plugin or theme information answer that
// is used.
type extensionInfo struct {
	Error        string          `json:"error"`
	Name         string          `json:"name"`
	Slug         string          `json:"slug"`
	Version      string          `json:"version"`
	DownloadLink string          `json:"download_link"`
	Versions     json.RawMessage `json:"versions"`
}

func (e *extensionInfo) versions() map[string]string {
	var m map[string]string
	if bytes.HasPrefix(bytes.TrimSpace(e.Versions), []byte("{")) {
		_ = json.Unmarshal(e.Versions, &m)
	}
	return m
}

// Plugin asks the plugin information API about slug at version ("" or
// "latest": the newest).
func (c *Catalogue) Plugin(ctx context.Context, slug, version string) (*Info, error) {
	q := url.Values{"action": {"plugin_information"}, "request[slug]": {slug}}
	var ei extensionInfo
	if err := c.get(ctx, "/plugins/info/1.2/", q, &ei); err != nil {
		return nil, fmt.Errorf("catalogue: plugin %s: %w", slug, err)
	}
	if ei.Error != "" || ei.Version == "" {
		return nil, fmt.Errorf("catalogue: plugin %s: %s: %w", slug, orDefault(ei.Error, "no version"), ErrNotFound)
	}
	info := &Info{Name: slug, Version: ei.Version, DownloadURL: ei.DownloadLink}
	if latest(version) || version == ei.Version {
		if info.DownloadURL == "" {
			return nil, fmt.Errorf("catalogue: plugin %s %s: no download link: %w", slug, ei.Version, ErrNotFound)
		}
		return info, nil
	}
	vs := ei.versions()
	u, ok := vs[version]
	if !ok || version == "trunk" {
		var have []string
		for v := range vs {
			if v != "trunk" {
				have = append(have, v)
			}
		}
		slices.Sort(have)
		return nil, fmt.Errorf("catalogue: plugin %s has no version %s (it has %s): %w", slug, version, orDefault(strings.Join(have, ", "), "none listed"), ErrNotFound)
	}
	info.Version, info.DownloadURL = version, u
	return info, nil
}

// Theme asks the theme information API about slug at version ("" or
// "latest": the newest).
func (c *Catalogue) Theme(ctx context.Context, slug, version string) (*Info, error) {
	q := url.Values{"action": {"theme_information"}, "request[slug]": {slug}}
	var ei extensionInfo
	if err := c.get(ctx, "/themes/info/1.2/", q, &ei); err != nil {
		return nil, fmt.Errorf("catalogue: theme %s: %w", slug, err)
	}
	if ei.Error != "" || ei.Version == "" || ei.DownloadLink == "" {
		return nil, fmt.Errorf("catalogue: theme %s: %s: %w", slug, orDefault(ei.Error, "no version"), ErrNotFound)
	}
	info := &Info{Name: slug, Version: ei.Version, DownloadURL: ei.DownloadLink}
	if latest(version) || version == ei.Version {
		return info, nil
	}
	if u, ok := ei.versions()[version]; ok {
		info.Version, info.DownloadURL = version, u
		return info, nil
	}
	// Older versions sit beside the newest: .../theme/SLUG.VERSION.zip.
	u, err := url.Parse(ei.DownloadLink)
	if err != nil {
		return nil, fmt.Errorf("catalogue: theme %s: download link %q: %w", slug, ei.DownloadLink, err)
	}
	u.Path = path.Join(path.Dir(u.Path), slug+"."+version+".zip")
	u.RawQuery = ""
	info.Version, info.DownloadURL = version, u.String()
	return info, nil
}

type versionCheck struct {
	Offers []struct {
		Response string `json:"response"`
		Download string `json:"download"`
		Version  string `json:"version"`
		Packages struct {
			Full string `json:"full"`
		} `json:"packages"`
	} `json:"offers"`
}

// Core asks the core version check about version ("" or "latest": the
// newest offer); name must be "wordpress".
func (c *Catalogue) Core(ctx context.Context, name, version string) (*Info, error) {
	if name != CoreName {
		return nil, fmt.Errorf("catalogue: a core is named %q, not %q", CoreName, name)
	}
	var vc versionCheck
	err := c.get(ctx, "/core/version-check/1.7/", nil, &vc)
	if err != nil && (latest(version) || c.Downloads == "") {
		return nil, fmt.Errorf("catalogue: core: %w", err)
	}
	downloads := c.Downloads
	for _, o := range vc.Offers {
		dl := orDefault(o.Download, o.Packages.Full)
		if o.Version == "" || dl == "" {
			continue
		}
		if latest(version) || o.Version == version {
			return &Info{Name: CoreName, Version: o.Version, DownloadURL: dl}, nil
		}
		if downloads == "" {
			if i := strings.Index(dl, "/release/"); i > 0 {
				downloads = dl[:i]
			}
		}
	}
	if latest(version) {
		return nil, fmt.Errorf("catalogue: core: the version check offers nothing: %w", ErrNotFound)
	}
	if downloads == "" {
		downloads = "https://downloads.wordpress.org"
	}
	return &Info{Name: CoreName, Version: version,
		DownloadURL: strings.TrimSuffix(downloads, "/") + "/release/wordpress-" + url.PathEscape(version) + ".zip"}, nil
}

func (c *Catalogue) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return defaultClient()
}

// get GETs API+p?q and decodes the JSON answer into v. A 404 wraps
// ErrNotFound (after decoding its {"error":...} into v when it has one).
func (c *Catalogue) get(ctx context.Context, p string, q url.Values, v any) error {
	u := strings.TrimSuffix(c.API, "/") + p
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	resp, err := c.client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxInfoBytes+1))
	if err != nil {
		return err
	}
	if len(body) > maxInfoBytes {
		return fmt.Errorf("GET %s: an answer larger than %d bytes", u, maxInfoBytes)
	}
	if resp.StatusCode == http.StatusNotFound {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %w", e.Error, ErrNotFound)
		}
		return fmt.Errorf("GET %s: %s: %w", u, resp.Status, ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: not the catalogue's JSON: %w", u, err)
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// ensureCatalogue fetches a catalogue version, unless the index says the
// store holds it already (an explicit version then needs no network).
func (s *Store) ensureCatalogue(ctx context.Context, ref Ref) (*Artefact, error) {
	cat := s.cfg.Catalogue
	if cat == nil {
		return nil, errors.New("this shard has no catalogue")
	}
	key := func(v string) string {
		return "catalogue\x00" + cat.API + "\x00" + string(ref.Kind) + "\x00" + ref.Name + "\x00" + v
	}
	if !latest(ref.Version) {
		if a := s.indexed(ref.Kind, key(ref.Version)); a != nil {
			return a, nil
		}
	}
	info, err := cat.Info(ctx, ref.Kind, ref.Name, ref.Version)
	if err != nil {
		return nil, err
	}
	if a := s.indexed(ref.Kind, key(info.Version)); a != nil {
		return a, nil
	}
	unlock, err := s.lock(ctx, "fetch:"+info.DownloadURL)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if a := s.indexed(ref.Kind, key(info.Version)); a != nil {
		return a, nil
	}
	p, sum, err := s.download(ctx, info.DownloadURL, "")
	if err != nil {
		return nil, err
	}
	a, err := s.ensureFile(ctx, ref, "", p, sum)
	if err != nil {
		return nil, err
	}
	if err := s.remember(key(info.Version), a.Digest); err != nil {
		return nil, err
	}
	return a, nil
}
