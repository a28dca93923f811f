package artefact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/aipress/aipress/internal/egress"
	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// A git source is a repository (URL: https to a public address, see
// CheckURL and package egress) at Ref — a branch, a tag or a commit (7 to 40 hex digits) —
// and the folder at Path in it ("" the repository's root). The ref is
// resolved with a remote listing first, so that a commit the store already
// unpacked costs no clone; otherwise the ref is cloned shallowly (a commit:
// fully, git cannot fetch one commit) into a bare repository below .tmp.
// The folder becomes <name>/... and is checked as an archive would be
// (links and submodules refused, limits, names).
//
// The digest of a git artefact is the SHA-256 of its listing: the line
// "aipress git tree v1", then one line `<mode, octal> <blob id>
// "<name>/<path>"` (the path quoted as Go does) per file, sorted by path. The same tree under the same name gives the
// same digest, whichever commit or repository it came from.

var (
	commitRE     = regexp.MustCompile(`^[0-9a-f]{7,40}$`)
	fullCommitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

func (s *Store) ensureGit(ctx context.Context, ref Ref) (*Artefact, error) {
	src := ref.Source
	if err := CheckURL(src.URL, s.cfg.AllowPrivateNetworks); err != nil {
		return nil, err
	}
	// go-git's transport is package egress's: guarded unless the
	// context allows private networks.
	ctx = egress.WithAllowPrivate(ctx, s.cfg.AllowPrivateNetworks)
	if src.Ref == "" || strings.HasPrefix(src.Ref, "-") || strings.Contains(src.Ref, "..") {
		return nil, fmt.Errorf("git ref %q: a branch, tag or commit", src.Ref)
	}
	sub := strings.Trim(src.Path, "/")
	if sub != "" {
		if _, err := checkName(sub); err != nil {
			return nil, fmt.Errorf("git path %q: %w", src.Path, err)
		}
	}
	target, err := s.gitResolve(ctx, src.URL, src.Ref)
	if err != nil {
		return nil, err
	}
	key := func(h string) string {
		return "git\x00" + src.URL + "\x00" + h + "\x00" + sub + "\x00" + string(ref.Kind) + "\x00" + ref.Name
	}
	if target.hash != "" {
		if a := s.indexed(ref.Kind, key(target.hash)); a != nil {
			return a, nil
		}
	}
	unlock, err := s.lock(ctx, "fetch:"+key(target.hash+string(target.ref)+target.commit))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if target.hash != "" {
		if a := s.indexed(ref.Kind, key(target.hash)); a != nil {
			return a, nil
		}
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.cfg.Dir, ".tmp"), "git-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	tree, err := s.gitTree(ctx, tmp, src.URL, target, sub)
	if err != nil {
		return nil, err
	}
	es, digest, err := treeEntries(tree, ref.Name, s.cfg.Limits)
	if err != nil {
		return nil, err
	}
	a, err := s.ensureDigest(ctx, ref.Kind, "", digest, func() (*Artefact, error) {
		return s.unpack(ctx, ref.Kind, ref.Name, "", digest, es)
	})
	if err != nil {
		return nil, err
	}
	if target.hash != "" {
		if err := s.remember(key(target.hash), digest); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// gitTarget is a resolved ref: ref a full reference name to clone
// (refs/heads/x, refs/tags/x) with hash what it points to, or only a
// commit (hash when it is complete, short otherwise).
type gitTarget struct {
	ref    plumbing.ReferenceName
	hash   string
	commit string
}

// gitResolve finds want: a complete commit id as it is, else by listing
// the remote's references: a branch, then a tag, then a short commit id.
func (s *Store) gitResolve(ctx context.Context, url, want string) (gitTarget, error) {
	if fullCommitRE.MatchString(want) {
		// A complete commit id names its content: no listing needed.
		return gitTarget{commit: want, hash: want}, nil
	}
	rem := git.NewRemote(memory.NewStorage(), &gitconfig.RemoteConfig{Name: "origin", URLs: []string{url}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{})
	if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return gitTarget{}, fmt.Errorf("git %s: %w", url, err)
	}
	for _, name := range []plumbing.ReferenceName{plumbing.NewBranchReferenceName(want), plumbing.NewTagReferenceName(want)} {
		for _, r := range refs {
			if r.Name() == name && r.Type() == plumbing.HashReference {
				return gitTarget{ref: name, hash: r.Hash().String()}, nil
			}
		}
	}
	if commitRE.MatchString(want) {
		t := gitTarget{commit: want}
		if len(want) == 40 {
			t.hash = want
		}
		return t, nil
	}
	return gitTarget{}, fmt.Errorf("git %s: no branch, tag or commit %q: %w", url, want, ErrNotFound)
}

// gitTree clones t into dir (bare) and returns the tree at sub of the
// commit t names.
func (s *Store) gitTree(ctx context.Context, dir, url string, t gitTarget, sub string) (*object.Tree, error) {
	st := filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRUDefault())
	opts := &git.CloneOptions{URL: url, NoCheckout: true, Tags: git.NoTags}
	if t.ref != "" {
		opts.ReferenceName, opts.SingleBranch, opts.Depth = t.ref, true, 1
	}
	s.cfg.Logger.Info("artefact git clone", "url", url, "ref", string(t.ref), "commit", t.commit)
	repo, err := git.CloneContext(ctx, st, nil, opts)
	if err != nil {
		return nil, fmt.Errorf("git clone %s: %w", url, err)
	}
	var h plumbing.Hash
	if t.ref != "" {
		r, err := repo.Reference(t.ref, true)
		if err != nil {
			return nil, fmt.Errorf("git %s: %s: %w", url, t.ref, err)
		}
		h = r.Hash()
	} else {
		p, err := repo.ResolveRevision(plumbing.Revision(t.commit))
		if err != nil {
			return nil, fmt.Errorf("git %s: commit %s: %v: %w", url, t.commit, err, ErrNotFound)
		}
		h = *p
	}
	commit, err := repo.CommitObject(h)
	if err != nil {
		tag, terr := repo.TagObject(h)
		if terr != nil {
			return nil, fmt.Errorf("git %s: %s is not a commit: %w", url, h, err)
		}
		if commit, err = tag.Commit(); err != nil {
			return nil, fmt.Errorf("git %s: tag %s: %w", url, tag.Name, err)
		}
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("git %s: %w", url, err)
	}
	if sub != "" {
		if tree, err = tree.Tree(sub); err != nil {
			return nil, fmt.Errorf("git %s: no folder %q at %s: %w", url, sub, commit.Hash, ErrNotFound)
		}
	}
	return tree, nil
}

type treeLine struct {
	path string
	mode uint32
	hash string
}

// treeEntries lists tree as the entries of an archive whose root folder is
// name, refusing links and submodules and checking limits as it goes, and
// returns the tree's digest (see the git source's doc).
func treeEntries(tree *object.Tree, name string, lim Limits) ([]entry, string, error) {
	es := []entry{{name: name, dir: true}}
	var (
		lines []treeLine
		total int64
		walk  func(t *object.Tree, prefix string) error
	)
	walk = func(t *object.Tree, prefix string) error {
		for _, te := range t.Entries {
			full := prefix + "/" + te.Name
			if _, err := checkName(full); err != nil {
				return err
			}
			if strings.EqualFold(te.Name, ".git") {
				// A repository's metadata (hooks, config) is no part of
				// a plugin; git never commits one, a hand-made tree can.
				return refuse(full, "a .git entry (not allowed in a git source's tree)")
			}
			if len(es) >= lim.MaxFiles {
				return refuse("", "more than the limit of %d entries", lim.MaxFiles)
			}
			switch te.Mode {
			case filemode.Dir:
				sub, err := t.Tree(te.Name)
				if err != nil {
					return err
				}
				es = append(es, entry{name: full, dir: true})
				if err := walk(sub, full); err != nil {
					return err
				}
			case filemode.Regular, filemode.Executable, filemode.Deprecated:
				f, err := t.TreeEntryFile(&te)
				if err != nil {
					return err
				}
				total += f.Size
				if total > lim.MaxUnpackedBytes {
					return refuse("", "more than the limit of %d unpacked bytes", lim.MaxUnpackedBytes)
				}
				es = append(es, entry{name: full, size: f.Size, open: func() (io.ReadCloser, error) { return f.Reader() }})
				lines = append(lines, treeLine{path: full, mode: uint32(te.Mode), hash: te.Hash.String()})
			case filemode.Symlink:
				return refuse(full, "a symbolic link (links are not allowed)")
			case filemode.Submodule:
				return refuse(full, "a git submodule (not allowed: the folder must be complete)")
			default:
				return refuse(full, "an entry of mode %o", uint32(te.Mode))
			}
		}
		return nil
	}
	if err := walk(tree, name); err != nil {
		return nil, "", err
	}
	slices.SortFunc(lines, func(a, b treeLine) int { return strings.Compare(a.path, b.path) })
	h := sha256.New()
	io.WriteString(h, "aipress git tree v1\n")
	for _, l := range lines {
		fmt.Fprintf(h, "%o %s %s\n", l.mode, l.hash, strconv.Quote(l.path))
	}
	return es, hex.EncodeToString(h.Sum(nil)), nil
}
