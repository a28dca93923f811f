package liveimport

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// File is one pulled file: Path relative to the docroot (slash
// separated, under wp-content/), its size and modification time (Unix
// seconds, as SFTP gives it) on the server.
type File struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"`
	// Real is the file's path on the server (the link's target for a
	// file reached through a link inside the docroot).
	Real string      `json:"-"`
	Mode fs.FileMode `json:"-"`
}

// Listing is every file a pull found, sorted by path.
type Listing struct {
	Files []File `json:"files"`
}

// Changed returns the files of l that are not in old with the same
// size and mtime, and the paths of old no longer in l.
func (l *Listing) Changed(old *Listing) (changed []File, deleted []string) {
	prev := map[string]File{}
	if old != nil {
		for _, f := range old.Files {
			prev[f.Path] = f
		}
	}
	seen := map[string]bool{}
	for _, f := range l.Files {
		seen[f.Path] = true
		if p, ok := prev[f.Path]; !ok || p.Size != f.Size || p.MTime != f.MTime {
			changed = append(changed, f)
		}
	}
	if old != nil {
		for _, f := range old.Files {
			if !seen[f.Path] {
				deleted = append(deleted, f.Path)
			}
		}
	}
	return changed, deleted
}

// Bytes is the files' total size.
func (l *Listing) Bytes() int64 {
	var n int64
	for _, f := range l.Files {
		n += f.Size
	}
	return n
}

// maxDepth bounds the walk (links inside the docroot may form loops:
// each real directory is walked once, and no deeper than this).
const maxDepth = 64

// List walks <docroot>/wp-content and <docroot>/wp-includes/version.php
// on the server, confined to the docroot: a link is followed only when
// the server resolves its target inside the docroot; anything else that
// is not a regular file or directory is skipped, with the reason.
func (c *Conn) List(ctx context.Context) (*Listing, []string, error) {
	w := &walker{c: c, ctx: ctx, seen: map[string]bool{}}
	fi, err := c.sftp.Lstat(path.Join(c.root, "wp-content"))
	if err != nil {
		return nil, nil, fmt.Errorf("no wp-content in %s on %s: %w", c.src.Path, c.src.Host, err)
	}
	if err := w.entry("wp-content", path.Join(c.root, "wp-content"), fi, 0); err != nil {
		return nil, nil, err
	}
	if !slices.ContainsFunc(w.files, func(f File) bool { return strings.HasPrefix(f.Path, "wp-content/") }) && len(w.skipped) > 0 && strings.HasPrefix(w.skipped[0], "wp-content ") {
		return nil, w.skipped, fmt.Errorf("wp-content in %s on %s is a link out of the docroot (%s): give the docroot that holds it", c.src.Path, c.src.Host, w.skipped[0])
	}
	// The version file only: the core is the platform's. (Lstat follows
	// links in the path's directories: resolve it first.)
	if real, err := c.resolve(path.Join(c.root, "wp-includes", "version.php")); err == nil {
		if !w.inside(real) {
			w.skipped = append(w.skipped, fmt.Sprintf("wp-includes/version.php (resolves to %s, outside the docroot: not followed)", real))
		} else if fi, err := c.sftp.Lstat(real); err == nil {
			_ = w.entry("wp-includes/version.php", real, fi, 0)
		}
	}
	slices.SortFunc(w.files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return &Listing{Files: w.files}, w.skipped, nil
}

type walker struct {
	c       *Conn
	ctx     context.Context
	files   []File
	skipped []string
	seen    map[string]bool
}

// inside reports whether real (a resolved server path) is the docroot or
// below it.
func (w *walker) inside(real string) bool {
	return real == w.c.root || strings.HasPrefix(real, strings.TrimSuffix(w.c.root, "/")+"/")
}

// entry adds rel (at server path p, Lstat fi) and what is below it.
func (w *walker) entry(rel, p string, fi fs.FileInfo, depth int) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		real, err := w.c.resolve(p)
		if err != nil {
			w.skipped = append(w.skipped, fmt.Sprintf("%s (a link that does not resolve: %v)", rel, err))
			return nil
		}
		if !w.inside(real) {
			w.skipped = append(w.skipped, fmt.Sprintf("%s (a link to %s, outside the docroot: not followed)", rel, real))
			return nil
		}
		st, err := w.c.sftp.Lstat(real)
		if err != nil || st.Mode()&fs.ModeSymlink != 0 {
			w.skipped = append(w.skipped, fmt.Sprintf("%s (a link to %s that cannot be read)", rel, real))
			return nil
		}
		fi, p = st, real
	}
	switch {
	case fi.Mode().IsRegular():
		w.files = append(w.files, File{Path: rel, Size: fi.Size(), MTime: fi.ModTime().Unix(), Real: p, Mode: fi.Mode().Perm()})
		return nil
	case fi.IsDir():
		// p is resolved here: the docroot is, and every step down is a
		// directory entry that is not a link, or a link's resolved target.
		real := p
		if !w.inside(real) {
			w.skipped = append(w.skipped, fmt.Sprintf("%s (resolves to %s, outside the docroot: not followed)", rel, real))
			return nil
		}
		if w.seen[real] || depth > maxDepth {
			w.skipped = append(w.skipped, fmt.Sprintf("%s (a directory walked already, or too deep: a link loop?)", rel))
			return nil
		}
		w.seen[real] = true
		ents, err := w.c.sftp.ReadDir(real)
		if err != nil {
			return fmt.Errorf("list %s: %w", rel, err)
		}
		for _, e := range ents {
			name := e.Name()
			if name == "." || name == ".." || strings.Contains(name, "/") {
				continue
			}
			if err := w.entry(rel+"/"+name, path.Join(real, name), e, depth+1); err != nil {
				return err
			}
		}
		return nil
	default:
		w.skipped = append(w.skipped, fmt.Sprintf("%s (a %s: not a file)", rel, fi.Mode().Type()))
		return nil
	}
}

// resolve returns p with every symbolic link in it followed, as the
// client sees them through SFTP (ReadLink and Lstat, component by
// component): a server's realpath may not resolve links (pkg/sftp's
// does not), so the confinement does not trust it.
func (c *Conn) resolve(p string) (string, error) {
	hops := 0
	done := "/"
	rest := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		if name == "" || name == "." {
			continue
		}
		if name == ".." {
			done = path.Dir(done)
			continue
		}
		next := path.Join(done, name)
		fi, err := c.sftp.Lstat(next)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many levels of links", p)
		}
		target, err := c.sftp.ReadLink(next)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			done = "/"
		}
		rest = append(strings.Split(strings.TrimPrefix(target, "/"), "/"), rest...)
	}
	return done, nil
}
