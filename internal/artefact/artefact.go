// Package artefact fetches, verifies and keeps the plugins, themes and
// WordPress cores that sites run: once per shard, in a content-addressed,
// read-only store, so that fifty sites using one plugin version share one
// copy on disk (and, since PHP resolves the symlinks that link it into each
// docroot, one copy in OPcache).
//
// Sources: a wordpress.org-compatible catalogue (the plugin and theme
// information APIs and the core version check, in their real formats), zip
// archives at a URL verified against a SHA-256, archives uploaded through
// the API, and git repositories at a ref. Every archive is checked before
// anything is unpacked: its size, its number of files, its unpacked size,
// names that leave the archive (zip-slip), links and special files, and PHP
// outside the archive's one root folder are refused with the reason.
package artefact

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/aipress/aipress/internal/site"
)

// Kind is what an artefact is.
type Kind string

// Kinds.
const (
	Plugin Kind = "plugin"
	Theme  Kind = "theme"
	Core   Kind = "core"
)

// Ref names an artefact: a plugin or theme (Name is its slug) or a core
// (Name "wordpress", Version the core's version), and where it comes from.
type Ref struct {
	Kind    Kind
	Name    string
	Version string // "" or "latest": the catalogue's newest
	Source  site.ExtensionSource
}

// Artefact is an unpacked, verified artefact in the store.
type Artefact struct {
	Kind Kind
	Name string
	// Digest is the SHA-256 (hex) of the archive the artefact was
	// unpacked from (a git source: of the tree, see the git source).
	Digest string
	// Version is the version the artefact itself declares (a plugin's
	// "Version:" header, a theme's style.css, a core's version.php).
	Version string
	// Dir is the unpacked folder to link into a docroot:
	// <root>/<kind>/<digest>/<name> (a core: its WordPress tree). It and
	// everything under it is root's and read-only.
	Dir   string
	Files int
	Bytes int64
}

// Limits bound what an archive may hold. Zero fields take DefaultLimits'.
type Limits struct {
	MaxArchiveBytes  int64
	MaxFiles         int
	MaxUnpackedBytes int64
}

// DefaultLimits fit the largest popular plugins and a WordPress core.
var DefaultLimits = Limits{MaxArchiveBytes: 128 << 20, MaxFiles: 20000, MaxUnpackedBytes: 512 << 20}

// ErrRefused is wrapped by errors about archives that are refused (bad
// digest, zip-slip, links, limits, PHP outside the root folder).
var ErrRefused = errors.New("artefact refused")

// Config configures a Store.
type Config struct {
	// Dir is the store's root (a shard's: <data dir>/artefacts).
	Dir string
	// Catalogue answers wordpress.org sources; nil refuses them.
	Catalogue *Catalogue
	// Uploads opens an archive uploaded through the API by its SHA-256;
	// nil refuses upload sources.
	Uploads func(ctx context.Context, sha256 string) (io.ReadCloser, error)
	// Client fetches zip URLs and catalogue downloads (default: a client
	// with timeouts).
	Client *http.Client
	Limits Limits
	Logger *slog.Logger
}

// Store is a shard's artefact store. Its methods are safe for concurrent
// use.
type Store struct {
	cfg Config
}

// Open opens (creating) the store at cfg.Dir.
func Open(cfg Config) (*Store, error) {
	return &Store{cfg: cfg}, nil
}

// Root is the store's root directory: every Artefact.Dir is below it.
func (s *Store) Root() string { return s.cfg.Dir }

// Ensure returns the artefact ref names, fetching, verifying and unpacking
// it first when the store does not hold it yet. It is idempotent and safe
// to call concurrently for the same ref (one fetch); a crash mid-way leaves
// nothing that a later call would take for complete.
func (s *Store) Ensure(ctx context.Context, ref Ref) (*Artefact, error) {
	return nil, errors.New("artefact: not implemented yet")
}

// Catalogue is a client of a wordpress.org-compatible catalogue: the plugin
// and theme information APIs (/plugins/info/1.2/, /themes/info/1.2/) and
// the core version check (/core/version-check/1.7/).
type Catalogue struct {
	// API is the catalogue's base URL (https://api.wordpress.org).
	API    string
	Client *http.Client
}

// Info is what the catalogue says of one version of a plugin, theme or
// core.
type Info struct {
	Name        string
	Version     string // resolved ("latest" → the newest)
	DownloadURL string
}
