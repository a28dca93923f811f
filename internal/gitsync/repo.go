package gitsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// Limits on what is read from a repository.
const (
	// MaxFileBytes bounds a site file.
	MaxFileBytes = 1 << 20
	// MaxFiles bounds the site files of an organisation's directory.
	MaxFiles = 1000
)

// fetch brings cfg's branch into the cache (a bare repository per URL
// under dir, fetched depth commits deep) and returns the repository and
// the branch's head.
func fetch(ctx context.Context, dir string, depth int, cfg Config, cred *Credential) (*git.Repository, plumbing.Hash, error) {
	sum := sha256.Sum256([]byte(cfg.URL))
	repoDir := filepath.Join(dir, hex.EncodeToString(sum[:16]))
	repo, err := openCache(repoDir, cfg.URL)
	if err != nil {
		return nil, plumbing.ZeroHash, err
	}
	local := plumbing.ReferenceName("refs/remotes/origin/" + cfg.Branch)
	opts := &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []gitconfig.RefSpec{gitconfig.RefSpec("+refs/heads/" + cfg.Branch + ":" + local.String())},
		Depth:      depth,
		Force:      true,
		Tags:       git.NoTags,
	}
	if cred != nil {
		opts.Auth = &githttp.BasicAuth{Username: cred.Username, Password: cred.Password}
	}
	err = repo.FetchContext(ctx, opts)
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
	case errors.Is(err, transport.ErrAuthenticationRequired):
		if cred == nil {
			return nil, plumbing.ZeroHash, fmt.Errorf("fetch %s: the repository requires authentication; store a credential and name it in credentials.secret", cfg.URL)
		}
		return nil, plumbing.ZeroHash, fmt.Errorf("fetch %s: the repository refused the credential (authentication required)", cfg.URL)
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return nil, plumbing.ZeroHash, fmt.Errorf("fetch %s: the credential is not authorized to read the repository", cfg.URL)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return nil, plumbing.ZeroHash, fmt.Errorf("fetch %s: repository not found", cfg.URL)
	case errors.Is(err, git.NoMatchingRefSpecError{}):
		return nil, plumbing.ZeroHash, fmt.Errorf("fetch %s: no branch %q", cfg.URL, cfg.Branch)
	default:
		return nil, plumbing.ZeroHash, fmt.Errorf("fetch %s: %w", cfg.URL, err)
	}
	ref, err := repo.Reference(local, true)
	if err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("fetch %s: no branch %q", cfg.URL, cfg.Branch)
	}
	return repo, ref.Hash(), nil
}

// openCache opens (or makes) the bare cache repository at dir with its
// origin at url; a cache that does not open (a crash while it was made)
// is made anew.
func openCache(dir, url string) (*git.Repository, error) {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("git cache: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return nil, fmt.Errorf("git cache: %w", err)
		}
		if repo, err = git.PlainInit(dir, true); err != nil {
			return nil, fmt.Errorf("git cache: %w", err)
		}
	}
	rem, err := repo.Remote("origin")
	if err == nil && len(rem.Config().URLs) == 1 && rem.Config().URLs[0] == url {
		return repo, nil
	}
	if err == nil {
		if err := repo.DeleteRemote("origin"); err != nil {
			return nil, fmt.Errorf("git cache: %w", err)
		}
	}
	if _, err := repo.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{url}}); err != nil {
		return nil, fmt.Errorf("git cache: %w", err)
	}
	return repo, nil
}

// firstParents returns the commits after base up to head along head's
// first parents, oldest first, at most limit of them. found is false when
// base is not among them (base zero: the first sync; history rewritten;
// more than limit commits; a shallow fetch's end): the caller then applies
// head alone.
func firstParents(repo *git.Repository, head, base plumbing.Hash, limit int) (chain []*object.Commit, found bool, err error) {
	h := head
	for len(chain) < limit {
		if h == base {
			found = true
			break
		}
		c, err := repo.CommitObject(h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			break // beyond a shallow fetch
		}
		if err != nil {
			return nil, false, fmt.Errorf("commit %s: %w", h, err)
		}
		chain = append(chain, c)
		if len(c.ParentHashes) == 0 {
			break
		}
		h = c.ParentHashes[0]
	}
	if !found && h == base && !base.IsZero() {
		found = true
	}
	slices.Reverse(chain)
	return chain, found, nil
}

// siteFile is one site file in a commit.
type siteFile struct {
	Path string
	Hash plumbing.Hash
	blob *object.File
}

func (f siteFile) read() ([]byte, error) {
	if f.blob.Size > MaxFileBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", f.Path, f.blob.Size, MaxFileBytes)
	}
	r, err := f.blob.Reader()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
}

// files returns the site files of kind at p in commit c: the file p (a
// site), or the *.yaml and *.yml regular files directly in directory p
// (an organisation), by path.
func files(c *object.Commit, kind, p string) ([]siteFile, error) {
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", c.Hash, err)
	}
	if kind == KindSite {
		f, err := tree.File(p)
		if errors.Is(err, object.ErrFileNotFound) || errors.Is(err, object.ErrDirectoryNotFound) || errors.Is(err, object.ErrEntryNotFound) {
			return nil, fmt.Errorf("%s: no such file in the commit", p)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if !f.Mode.IsFile() || f.Mode == filemode.Symlink {
			return nil, fmt.Errorf("%s: not a regular file", p)
		}
		return []siteFile{{Path: p, Hash: f.Hash, blob: f}}, nil
	}
	dir := tree
	if p != "" {
		if dir, err = tree.Tree(p); err != nil {
			return nil, fmt.Errorf("%s: no such directory in the commit", p)
		}
	}
	var out []siteFile
	for _, e := range dir.Entries {
		if e.Mode != filemode.Regular && e.Mode != filemode.Executable {
			continue
		}
		if !strings.HasSuffix(e.Name, ".yaml") && !strings.HasSuffix(e.Name, ".yml") {
			continue
		}
		if len(out) == MaxFiles {
			return nil, fmt.Errorf("%s: more than %d site files", p, MaxFiles)
		}
		f, err := dir.TreeEntryFile(&e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path.Join(p, e.Name), err)
		}
		out = append(out, siteFile{Path: path.Join(p, e.Name), Hash: e.Hash, blob: f})
	}
	slices.SortFunc(out, func(a, b siteFile) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}
