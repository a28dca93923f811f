// Package repos is the control plane's side of the backup repositories:
// one repository per shard, at <base URL>/<shard name>/ in one bucket, and
// the keys that open them.
//
// Keys. The control plane holds a key-encryption key (KEK): 32 random bytes
// in <data-dir>/backup-kek (LoadKEK creates it, mode 0600, on first start).
// Every repository's master key is wrapped by the KEK (repo.Init) and, once
// more, by a per-repository access key derived as HMAC-SHA256(KEK,
// "repo:"+name) (repo.AddKey). A shard agent receives only the access key of
// the repositories it may use (its own; another one while it restores from
// it), never the KEK, so a compromised shard cannot read other shards'
// repositories it was never given. The control plane opens every
// repository with the KEK itself (list, show, forget, prune, verify).
//
// The KEK also derives the keys that authenticate site moves' exports in
// the transfer store (MoveKey), handed to a move's two shards only.
//
// Losing the KEK loses every backup: it must be backed up apart from the
// data directory and the bucket (docs/operations.md).
package repos

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"

	"github.com/aipress/aipress/internal/backup/repo"
)

// KEKFile is the name of the key-encryption key's file in the data dir.
const KEKFile = "backup-kek"

// LoadKEK reads the key-encryption key at path, creating it (repo.KeySize
// random bytes, mode 0600, in a directory that must exist) when there is
// none. A file of another size is an error, never overwritten.
func LoadKEK(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, repo.KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("backup key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) { // created meanwhile by another process
			return LoadKEK(path)
		}
		if err != nil {
			return nil, fmt.Errorf("backup key: %w", err)
		}
		_, werr := f.Write(key)
		serr := f.Sync()
		if err := errors.Join(werr, serr, f.Close()); err != nil {
			_ = os.Remove(path)
			return nil, fmt.Errorf("backup key %s: %w", path, err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backup key: %w", err)
	}
	if len(b) != repo.KeySize {
		return nil, fmt.Errorf("backup key %s: %d bytes, want %d", path, len(b), repo.KeySize)
	}
	return b, nil
}

// DefaultBaseURL is the bucket of the repositories when none is configured:
// a directory under the data dir.
func DefaultBaseURL(dataDir string) string {
	abs, err := filepath.Abs(filepath.Join(dataDir, "backups"))
	if err != nil {
		abs = filepath.Join(dataDir, "backups")
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
}

// RepoURL returns the URL of the repository called name under base: a
// sub-directory for file:// URLs, a key prefix (gocloud.dev/blob's prefix
// parameter, added to one base may already have) for object stores.
func RepoURL(base, name string) (string, error) {
	if !ValidName(name) {
		return "", fmt.Errorf("backup repository name %q: want a shard name", name)
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("backup URL %q: want a URL such as file:///var/lib/aipress/backups, s3://bucket or gs://bucket", base)
	}
	if u.Scheme == "file" {
		u.Path = path.Join(u.Path, name)
		return u.String(), nil
	}
	q := u.Query()
	prefix := q.Get("prefix")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	q.Set("prefix", prefix+name+"/")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// ValidName reports whether name may name a repository (a shard name: an
// RFC 1123 label).
func ValidName(name string) bool {
	if name == "" || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Access is what a shard needs to use one repository.
type Access struct {
	Name string `json:"repo"`
	URL  string `json:"url"`
	// Key is the repository's access key (a KEK for repo.Open).
	Key []byte `json:"key"`
}

// Config configures a Manager.
type Config struct {
	// BaseURL is the bucket URL the repositories live under.
	BaseURL string
	// KEK is the key-encryption key (repo.KeySize bytes).
	KEK []byte
	// KEKFile, if set, is the file KEK was read from: the Manager re-reads
	// it when it changes (a rotation, RotateKEK, by another process) and
	// falls back to its old key (OldSuffix) for a repository that is not
	// re-wrapped yet.
	KEKFile string
	// MoveSecret is what move keys derive from (LoadPlatformSecret); nil:
	// KEK as given.
	MoveSecret []byte
	// Options are passed to every repository the Manager opens.
	Options *repo.Options
}

// Manager opens the repositories for the control plane and hands out
// access. It is safe for concurrent use.
type Manager struct {
	cfg Config

	kek *kekSource

	mu    sync.Mutex
	repos map[string]*repo.Repo // opened with the KEK, by name
	keyed map[string]string     // repositories known to hold their access key: that key
}

// New returns a Manager; it checks the configuration but opens nothing.
func New(cfg Config) (*Manager, error) {
	if len(cfg.KEK) != repo.KeySize {
		return nil, fmt.Errorf("backup repositories: key-encryption key of %d bytes, want %d", len(cfg.KEK), repo.KeySize)
	}
	if _, err := RepoURL(cfg.BaseURL, "x"); err != nil {
		return nil, err
	}
	src := &kekSource{path: cfg.KEKFile, cur: append([]byte(nil), cfg.KEK...)}
	if cfg.KEKFile != "" {
		if fi, err := os.Stat(cfg.KEKFile); err == nil {
			src.curMod, src.checked = fileStamp(fi), time.Now()
		}
	}
	if cfg.MoveSecret == nil {
		cfg.MoveSecret = append([]byte(nil), cfg.KEK...)
	}
	return &Manager{cfg: cfg, kek: src, repos: map[string]*repo.Repo{}, keyed: map[string]string{}}, nil
}

// BaseURL returns the configured bucket URL.
func (m *Manager) BaseURL() string { return m.cfg.BaseURL }

// AccessKey returns the access key of the repository called name.
func (m *Manager) AccessKey(name string) []byte {
	cur, _ := m.kek.keys(false)
	return accessKey(cur, name)
}

// MoveKey returns the key that authenticates the transfer of move moveID
// of the site with uid (see MoveKey).
func (m *Manager) MoveKey(siteUID, moveID string) []byte {
	return MoveKey(m.cfg.MoveSecret, siteUID, moveID)
}

// MoveKey derives the key of one site move from the key-encryption key:
// HMAC-SHA256(KEK, "move:" + len(uid) + ":" + uid + ":" + move id). The move's
// source signs its export's manifest with it and the target checks it
// (internal/shard, transfer.go); the control plane gives it to those two
// shards only (GET /v1/agent/sites/{name}/move-key). The domain prefix keeps
// it apart from the repositories' access keys ("repo:" + name).
func MoveKey(kek []byte, siteUID, moveID string) []byte {
	mac := hmac.New(sha256.New, kek)
	fmt.Fprintf(mac, "move:%d:%s:%s", len(siteUID), siteUID, moveID)
	return mac.Sum(nil)
}

// Open returns the repository called name opened with the KEK, creating it
// when create is true and there is none; without create a missing
// repository gives an error wrapping repo.ErrNotInitialized. The Manager
// keeps the repository open (and shares it between callers) until Close.
func (m *Manager) Open(ctx context.Context, name string, create bool) (*repo.Repo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.openLocked(ctx, name, create)
}

func (m *Manager) openLocked(ctx context.Context, name string, create bool) (*repo.Repo, error) {
	if r := m.repos[name]; r != nil {
		return r, nil
	}
	u, err := RepoURL(m.cfg.BaseURL, name)
	if err != nil {
		return nil, err
	}
	if err := fileDir(u, create); err != nil {
		return nil, fmt.Errorf("backup repository %s: %w", name, err)
	}
	cur, _ := m.kek.keys(false)
	r, err := repo.OpenURL(ctx, u, cur, create, m.cfg.Options)
	if errors.Is(err, repo.ErrWrongKey) && m.cfg.KEKFile != "" {
		// A rotation: the new key, or the old one while this repository
		// is not re-wrapped yet.
		cur, old := m.kek.keys(true)
		for _, k := range [][]byte{cur, old} {
			if k == nil {
				continue
			}
			if r, err = repo.OpenURL(ctx, u, k, create, m.cfg.Options); !errors.Is(err, repo.ErrWrongKey) {
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("backup repository %s: %w", name, err)
	}
	m.repos[name] = r
	return r, nil
}

// Access returns the URL and access key of the repository called name,
// initialising the repository and adding the access key first when needed.
func (m *Manager) Access(ctx context.Context, name string) (Access, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, err := RepoURL(m.cfg.BaseURL, name)
	if err != nil {
		return Access{}, err
	}
	// The KEK as its file says now: during a rotation the access key
	// handed out is always the new one (added here if the rotation has not
	// reached this repository yet), never one the rotation may remove.
	cur, _ := m.kek.keys(true)
	key := accessKey(cur, name)
	out := Access{Name: name, URL: u, Key: key}
	if m.keyed[name] == string(key) {
		return out, nil
	}
	r, err := m.openLocked(ctx, name, true)
	if err != nil {
		return Access{}, err
	}
	// Does a key file open with the access key already?
	bucket, err := blob.OpenBucket(ctx, u)
	if err != nil {
		return Access{}, fmt.Errorf("backup repository %s: %w", name, err)
	}
	defer bucket.Close()
	probe, err := repo.Open(ctx, bucket, key, m.cfg.Options)
	switch {
	case err == nil:
		_ = probe.Close()
	case errors.Is(err, repo.ErrWrongKey):
		if _, err := r.AddKey(ctx, key); err != nil {
			return Access{}, fmt.Errorf("backup repository %s: add access key: %w", name, err)
		}
	default:
		return Access{}, fmt.Errorf("backup repository %s: %w", name, err)
	}
	m.keyed[name] = string(key)
	return out, nil
}

// Close closes every repository the Manager opened.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for name, r := range m.repos {
		if err := r.Close(); err != nil {
			errs = append(errs, fmt.Errorf("backup repository %s: %w", name, err))
		}
		delete(m.repos, name)
	}
	return errors.Join(errs...)
}

// fileDir makes sure the directory of a file:// repository exists (the
// file driver refuses a missing one): created (0700) when create, else a
// missing one is repo.ErrNotInitialized. Other URLs need nothing.
func fileDir(rawURL string, create bool) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "file" {
		return nil
	}
	dir := filepath.FromSlash(u.Path)
	if create {
		return os.MkdirAll(dir, 0o700)
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return repo.ErrNotInitialized
	}
	return nil
}

// FetchAndOpen opens a repository with the Access fetch returns (the
// shard's side of Access). When the key no longer opens it — a KEK
// rotation removed it between the fetch and the open — it fetches once more
// (the control plane then hands out the new key) and opens with that.
func FetchAndOpen(ctx context.Context, fetch func(context.Context) (Access, error), opts *repo.Options) (*repo.Repo, error) {
	a, err := fetch(ctx)
	if err != nil {
		return nil, err
	}
	r, err := OpenAccess(ctx, a, opts)
	if !errors.Is(err, repo.ErrWrongKey) {
		return r, err
	}
	if a, err = fetch(ctx); err != nil {
		return nil, err
	}
	return OpenAccess(ctx, a, opts)
}

// OpenAccess opens a repository with an Access a shard received (the
// shard's side of Access).
func OpenAccess(ctx context.Context, a Access, opts *repo.Options) (*repo.Repo, error) {
	r, err := repo.OpenURL(ctx, a.URL, a.Key, false, opts)
	if err != nil {
		return nil, fmt.Errorf("backup repository %s: %w", a.Name, err)
	}
	return r, nil
}
