// Package artefact fetches, verifies and keeps the plugins, themes and
// WordPress cores that sites run: once per shard, in a content-addressed,
// read-only store, so that fifty sites using one plugin version share one
// copy on disk (and, since PHP resolves the symlinks that link it into each
// docroot, one copy in OPcache).
//
// # Layout
//
// An artefact lives at <root>/<kind>/<digest>/<name> (kind plugin, theme or
// core; a core's name is "wordpress"), with <root>/<kind>/<digest>/.complete
// (JSON: name, version, main file, counts) written last: a digest folder
// without it is a crash's leftover and is removed and redone by the next
// Ensure. An uploaded artefact is unpacked once per organisation, in a
// folder named not by its digest but by HMAC-SHA256(<root>/.secret, org
// NUL digest): a site's PHP cannot derive where another organisation's
// upload is, even from its SHA-256. Everything is root's, files 0644,
// folders 0755 but the root and the kind folders, 0711 (sites traverse
// them along their links but cannot list them); nothing is a link.
// Downloads go to <root>/.tmp (0700) first; <root>/.index remembers which
// digest a catalogue version, a zip URL or a git commit gave, so that an
// explicit version already in the store needs no network; <root>/.secret
// (32 random bytes, 0600) is created once and kept.
//
// # Checks
//
// Every archive (and every git tree) is checked before anything is
// unpacked, and each refusal wraps ErrRefused and names the entry: the
// archive's size (Limits.MaxArchiveBytes, also while downloading), its
// number of entries, its unpacked size (declared, and actual while
// unpacking), names (absolute, "..", ".", empty parts, backslashes, NUL and
// control characters, duplicates, duplicates once case is folded, a file
// that is also a folder), links and special files (the zip's external
// attributes; a git tree's symlink and submodule modes), encrypted entries,
// exactly one root folder named after the slug ("wordpress" for a core;
// PHP outside it is refused as such), and the declared version: a plugin
// needs a PHP file directly in its folder with a "Plugin Name:" header (its
// "Version:" is the artefact's), a theme a style.css with "Theme Name:", a
// core wp-includes/version.php.
//
// # Sources
//
// A wordpress.org-compatible catalogue (Catalogue, in the real formats, see
// catalogue.go), zip archives at a URL verified against a SHA-256 (https
// to a public address: every fetch goes through package egress's guarded
// client unless Config.AllowPrivateNetworks), archives uploaded through the API
// (Config.Uploads, their SHA-256 checked again), and git repositories at a
// ref (a branch, a tag or a commit; the tree at Path becomes the folder and
// the digest is that of a deterministic listing of the tree, see git.go).
package artefact

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aipress/aipress/internal/egress"
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

// CoreName is the name of every core artefact (and its root folder).
const CoreName = "wordpress"

// Ref names an artefact: a plugin or theme (Name is its slug) or a core
// (Name "wordpress", Version the core's version), and where it comes from.
type Ref struct {
	Kind    Kind
	Name    string
	Version string // "" or "latest": the catalogue's newest
	Source  site.ExtensionSource
	// Org is the organisation of the site the artefact is for; an
	// upload source needs it (an upload is unpacked where only that
	// organisation's sites are linked to it), the other sources ignore
	// it.
	Org string
}

// Artefact is an unpacked, verified artefact in the store.
type Artefact struct {
	Kind Kind   `json:"kind"`
	Name string `json:"name"`
	// Digest is the SHA-256 (hex) of the archive the artefact was
	// unpacked from (a git source: of the tree, see the git source).
	Digest string `json:"digest"`
	// Version is the version the artefact itself declares (a plugin's
	// "Version:" header, a theme's style.css, a core's version.php).
	Version string `json:"version"`
	// Main is, for a plugin, its main file (the one with the "Plugin
	// Name:" header) relative to Dir: WordPress's plugin file is
	// Name + "/" + Main. "" for themes and cores.
	Main string `json:"main,omitempty"`
	// Dir is the unpacked folder to link into a docroot:
	// <root>/<kind>/<digest>/<name> (a core: its WordPress tree). It and
	// everything under it is root's and read-only.
	Dir string `json:"-"`
	// Org is, for an uploaded artefact, the organisation it was unpacked
	// for; "" for the other sources.
	Org   string `json:"org,omitempty"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
}

// Limits bound what an archive may hold. Zero fields take DefaultLimits'.
type Limits struct {
	MaxArchiveBytes  int64
	MaxFiles         int
	MaxUnpackedBytes int64
}

// DefaultLimits fit the largest popular plugins and a WordPress core.
var DefaultLimits = Limits{MaxArchiveBytes: 128 << 20, MaxFiles: 20000, MaxUnpackedBytes: 512 << 20}

func (l Limits) withDefaults() Limits {
	if l.MaxArchiveBytes <= 0 {
		l.MaxArchiveBytes = DefaultLimits.MaxArchiveBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultLimits.MaxFiles
	}
	if l.MaxUnpackedBytes <= 0 {
		l.MaxUnpackedBytes = DefaultLimits.MaxUnpackedBytes
	}
	return l
}

// ErrRefused is wrapped by errors about archives that are refused (bad
// digest, zip-slip, links, limits, PHP outside the root folder).
var ErrRefused = errors.New("artefact refused")

// ErrNotFound is wrapped by errors about artefacts that do not exist: a
// catalogue without the plugin, theme or version, an upload nobody made, an
// artefact the store does not hold (Get).
var ErrNotFound = errors.New("artefact not found")

// Config configures a Store.
type Config struct {
	// Dir is the store's root (a shard's: <data dir>/artefacts).
	Dir string
	// Catalogue answers wordpress.org sources; nil refuses them.
	Catalogue *Catalogue
	// Uploads opens an archive uploaded through the API by its SHA-256;
	// nil refuses upload sources. An error wrapping ErrNotFound (or
	// fs.ErrNotExist) means there is no such upload.
	Uploads func(ctx context.Context, sha256 string) (io.ReadCloser, error)
	// Client fetches zip URLs and catalogue downloads, and answers the
	// Catalogue when it has no client of its own (default: a guarded
	// client, package egress: public addresses only, redirects only to
	// https, unless AllowPrivateNetworks).
	Client *http.Client
	// AllowPrivateNetworks lets zip, git and catalogue fetches reach
	// loopback and private addresses, over plain http too: for tests and
	// private mirrors (the --allow-private-fetch flag). Off, a source
	// whose URL (or a redirect, or a name's DNS answer) leads to the
	// platform's own network is refused.
	AllowPrivateNetworks bool
	Limits               Limits
	Logger               *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Store is a shard's artefact store. Its methods are safe for concurrent
// use.
type Store struct {
	cfg    Config
	locks  keyLocks
	secret []byte // the store's secret (see uploadDir)
}

// Open opens (creating) the store at cfg.Dir. It removes what an earlier
// process left half-downloaded.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("artefact: no directory")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("artefact: %w", err)
	}
	cfg.Dir = dir
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Client == nil {
		cfg.Client = egress.Client(cfg.AllowPrivateNetworks, 30*time.Minute)
	}
	if cfg.Catalogue != nil && cfg.Catalogue.Client == nil {
		c := *cfg.Catalogue
		c.Client = cfg.Client
		cfg.Catalogue = &c
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		// The root and the kind folders can be traversed, not listed:
		// sites' PHP reaches what their links name, and cannot list the
		// digests of what other sites run.
		{dir, 0o711}, {filepath.Join(dir, string(Plugin)), 0o711}, {filepath.Join(dir, string(Theme)), 0o711},
		{filepath.Join(dir, string(Core)), 0o711}, {filepath.Join(dir, ".tmp"), 0o700},
		{filepath.Join(dir, ".index"), 0o700}, {filepath.Join(dir, ".locks"), 0o700},
	} {
		if err := ownDir(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("artefact: open: %w", err)
		}
	}
	// Downloads a crash left behind.
	tmps, err := os.ReadDir(filepath.Join(dir, ".tmp"))
	if err != nil {
		return nil, fmt.Errorf("artefact: open: %w", err)
	}
	for _, e := range tmps {
		if err := os.RemoveAll(filepath.Join(dir, ".tmp", e.Name())); err != nil {
			return nil, fmt.Errorf("artefact: open: %w", err)
		}
	}
	secret, err := loadSecret(filepath.Join(dir, secretFile))
	if err != nil {
		return nil, fmt.Errorf("artefact: open: %w", err)
	}
	return &Store{cfg: cfg, locks: keyLocks{m: map[string]*keyLock{}}, secret: secret}, nil
}

// secretFile is the store's secret: 32 random bytes, root's, 0600,
// created once and kept (the folders of uploaded artefacts are named by
// it).
const secretFile = ".secret"

// loadSecret reads the secret at path, creating it first when there is
// none (by linking a complete temporary file into place, so that two
// processes opening a new store agree on one secret).
func loadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := createSecret(path); err != nil {
			return nil, fmt.Errorf("secret: %w", err)
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("secret %s: %d bytes, not 32", path, len(b))
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secret %s is not a regular file", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("secret %s is not this user's", path)
	}
	if fi.Mode().Perm() != 0o600 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// createSecret writes 32 random bytes to path unless it exists.
func createSecret(path string) error {
	var rnd [32]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-secret-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(rnd[:]); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(f.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// dirName is the name of the folder below <root>/<kind> that holds the
// artefact with digest: the digest itself, or, for an upload (org set),
// HMAC-SHA256(secret, org NUL digest) in hex, which no site can derive
// from an upload's SHA-256: an uploaded artefact is reachable only
// through the links of its organisation's sites.
func (s *Store) dirName(org, digest string) string {
	if org == "" {
		return digest
	}
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(org + "\x00" + digest))
	return hex.EncodeToString(m.Sum(nil))
}

// ownDir makes path a folder of this process's user with mode, refusing a
// link in its place.
func ownDir(path string, mode os.FileMode) error {
	if err := os.Mkdir(path, mode); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a folder", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		if err := os.Lchown(path, os.Geteuid(), os.Getegid()); err != nil {
			return err
		}
	}
	return os.Chmod(path, mode)
}

// Root is the store's root directory: every Artefact.Dir is below it.
func (s *Store) Root() string { return s.cfg.Dir }

// Limits are the store's limits (defaults filled in).
func (s *Store) Limits() Limits { return s.cfg.Limits }

var digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Get returns the artefact of kind with digest if the store holds it
// complete, without any network; an error wrapping ErrNotFound otherwise.
// org is "" for artefacts from a catalogue, a zip URL or git, and the
// organisation it was uploaded by for an upload (each organisation's
// copy of an upload is its own).
func (s *Store) Get(kind Kind, org, digest string) (*Artefact, error) {
	if !validKind(kind) || !digestRE.MatchString(digest) {
		return nil, fmt.Errorf("artefact: %s %q: %w", kind, digest, ErrNotFound)
	}
	a, err := s.get(kind, s.dirName(org, digest))
	if err != nil {
		return nil, err
	}
	if a.Digest != digest || a.Org != org {
		return nil, fmt.Errorf("artefact: %s %s: damaged marker: %w", kind, digest, ErrNotFound)
	}
	return a, nil
}

// At returns the artefact whose folder (Artefact.Dir) is dir, if the
// store holds it complete: how a link's target maps back to its artefact.
func (s *Store) At(dir string) (*Artefact, error) {
	rel, err := filepath.Rel(s.cfg.Dir, filepath.Clean(dir))
	parts := strings.Split(rel, string(filepath.Separator))
	if err != nil || len(parts) != 3 || !validKind(Kind(parts[0])) || !digestRE.MatchString(parts[1]) {
		return nil, fmt.Errorf("artefact: %s is no artefact of the store: %w", dir, ErrNotFound)
	}
	a, err := s.get(Kind(parts[0]), parts[1])
	if err != nil {
		return nil, err
	}
	if a.Name != parts[2] || s.dirName(a.Org, a.Digest) != parts[1] {
		return nil, fmt.Errorf("artefact: %s: damaged marker: %w", dir, ErrNotFound)
	}
	return a, nil
}

// get reads the artefact in <root>/<kind>/<dirName>.
func (s *Store) get(kind Kind, digest string) (*Artefact, error) {
	b, err := os.ReadFile(filepath.Join(s.cfg.Dir, string(kind), digest, ".complete"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("artefact: %s %s: %w", kind, digest, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("artefact: %w", err)
	}
	var a Artefact
	if err := json.Unmarshal(b, &a); err != nil || a.Kind != kind || !digestRE.MatchString(a.Digest) || !validName(kind, a.Name) {
		return nil, fmt.Errorf("artefact: %s %s: damaged marker: %w", kind, digest, ErrNotFound)
	}
	a.Dir = filepath.Join(s.cfg.Dir, string(kind), digest, a.Name)
	if fi, err := os.Lstat(a.Dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("artefact: %s %s: folder missing: %w", kind, digest, ErrNotFound)
	}
	return &a, nil
}

func validKind(k Kind) bool { return k == Plugin || k == Theme || k == Core }

func validName(k Kind, name string) bool {
	if k == Core {
		return name == CoreName
	}
	return site.ValidSlug(name)
}

var versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}$`)

// Ensure returns the artefact ref names, fetching, verifying and unpacking
// it first when the store does not hold it yet. It is idempotent and safe
// to call concurrently for the same ref (one fetch); a crash mid-way leaves
// nothing that a later call would take for complete.
func (s *Store) Ensure(ctx context.Context, ref Ref) (*Artefact, error) {
	if !validKind(ref.Kind) {
		return nil, fmt.Errorf("artefact: kind %q is not plugin, theme or core", ref.Kind)
	}
	if !validName(ref.Kind, ref.Name) {
		if ref.Kind == Core {
			return nil, fmt.Errorf("artefact: a core is named %q, not %q", CoreName, ref.Name)
		}
		return nil, fmt.Errorf("artefact: %q is not a %s slug", ref.Name, ref.Kind)
	}
	if ref.Version != "" && ref.Version != "latest" && !versionRE.MatchString(ref.Version) {
		return nil, fmt.Errorf("artefact: %q is not a version", ref.Version)
	}
	var (
		a   *Artefact
		err error
	)
	switch t := ref.Source.SourceType(); t {
	case site.SourceWordPressOrg:
		a, err = s.ensureCatalogue(ctx, ref)
	case site.SourceZip:
		a, err = s.ensureZipURL(ctx, ref)
	case site.SourceUpload:
		a, err = s.ensureUpload(ctx, ref)
	case site.SourceGit:
		a, err = s.ensureGit(ctx, ref)
	case site.SourceBundled:
		return nil, fmt.Errorf("artefact: %s %s is bundled with the core; the store does not hold it", ref.Kind, ref.Name)
	default:
		return nil, fmt.Errorf("artefact: source type %q is not one of wordpress.org, zip, upload, git", t)
	}
	if err != nil {
		return nil, fmt.Errorf("artefact: %s %s: %w", ref.Kind, ref.Name, err)
	}
	return a, nil
}

// ensureFile makes the archive at path (already hashed: digest) an
// artefact: checked, unpacked once. path is removed.
// An upload's (org set) is unpacked as that organisation's.
func (s *Store) ensureFile(ctx context.Context, ref Ref, org, path, digest string) (*Artefact, error) {
	defer os.Remove(path)
	a, err := s.ensureDigest(ctx, ref.Kind, org, digest, func() (*Artefact, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		es, err := zipEntries(f, fi.Size(), s.cfg.Limits)
		if err != nil {
			return nil, err
		}
		return s.unpack(ctx, ref.Kind, ref.Name, org, digest, es)
	})
	if err != nil {
		return nil, err
	}
	return checkSame(a, ref)
}

// ensureDigest returns the complete artefact kind/digest (an upload's:
// org's), calling make (under the folder's lock, after removing an
// incomplete leftover) when the store does not hold it.
func (s *Store) ensureDigest(ctx context.Context, kind Kind, org, digest string, make func() (*Artefact, error)) (*Artefact, error) {
	if a, err := s.Get(kind, org, digest); err == nil {
		return a, nil
	}
	dir := s.dirName(org, digest)
	unlock, err := s.lock(ctx, "digest:"+string(kind)+":"+dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if a, err := s.Get(kind, org, digest); err == nil {
		return a, nil
	}
	// A folder without a marker is a crash's leftover.
	if err := os.RemoveAll(filepath.Join(s.cfg.Dir, string(kind), dir)); err != nil {
		return nil, err
	}
	return make()
}

// lock takes the in-process lock of key and the matching file lock (for
// another process on the same store).
func (s *Store) lock(ctx context.Context, key string) (func(), error) {
	unlock, err := s.locks.lock(ctx, key)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(key))
	f, err := os.OpenFile(filepath.Join(s.cfg.Dir, ".locks", hex.EncodeToString(sum[:16])), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		unlock()
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		unlock()
		return nil, err
	}
	return func() { f.Close(); unlock() }, nil
}

// keyLocks are per-key mutexes that give up when the context ends.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{}
	refs int
}

func (l *keyLocks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	k := l.m[key]
	if k == nil {
		k = &keyLock{ch: make(chan struct{}, 1)}
		l.m[key] = k
	}
	k.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		k.refs--
		if k.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
	select {
	case k.ch <- struct{}{}:
		return func() { <-k.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// Index: what digest a catalogue version or a git commit gave.

func (s *Store) indexPath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(s.cfg.Dir, ".index", hex.EncodeToString(sum[:]))
}

// indexed returns the complete artefact key was recorded for, or nil.
func (s *Store) indexed(kind Kind, key string) *Artefact {
	b, err := os.ReadFile(s.indexPath(key))
	if err != nil {
		return nil
	}
	a, err := s.Get(kind, "", strings.TrimSpace(string(b)))
	if err != nil {
		return nil
	}
	return a
}

func (s *Store) remember(key, digest string) error {
	return writeFileAtomic(s.indexPath(key), []byte(digest+"\n"), 0o600)
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// defaultClient is a Catalogue's client when it has none: guarded
// (package egress).
func defaultClient() *http.Client { return egress.Client(false, 30*time.Minute) }

func validSlug(s string) bool { return site.ValidSlug(s) }
