package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// CopyResult counts what Copy did.
type CopyResult struct {
	Files, Links, Dirs int
	Bytes              int64
	// Skipped are the files left out: owned by another user than the
	// tree's, or root's with other hard links (a site's hard link to a
	// file it could not read, which must not become a copy it can).
	Skipped []string
}

// CopyOptions say whose the copies are and what Copy leaves alone.
type CopyOptions struct {
	// UID and GID own every copy. A regular file of another owner than
	// UID is left out, unless it is root's without other hard links.
	UID, GID int
	// KeepNewer leaves a file dst has with a later modification time
	// than src's (written there since an earlier Copy).
	KeepNewer bool
}

// Copy copies the tree src into dst (both directories, as root) without
// following a symbolic link on either side: directories, regular files
// (hard links among the tree's own files kept) and symbolic links, each
// with its mode and times, owned by o.UID:o.GID. A file dst already has
// with the same size and modification time is not copied again, so a
// second Copy picks up only what changed since the first. Other file types
// are left out.
func Copy(ctx context.Context, src, dst string, o CopyOptions) (CopyResult, error) {
	uid, gid := o.UID, o.GID
	var res CopyResult
	from, err := os.OpenRoot(src)
	if err != nil {
		return res, fmt.Errorf("volume: copy: %w", err)
	}
	defer from.Close()
	to, err := os.OpenRoot(dst)
	if err != nil {
		return res, fmt.Errorf("volume: copy: %w", err)
	}
	defer to.Close()
	type dirTimes struct {
		name string
		t    time.Time
	}
	var dirs []dirTimes
	links := map[[2]uint64]string{} // (dev, inode) → first name copied
	err = fs.WalkDir(from.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := from.Lstat(p)
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*syscall.Stat_t)
		if st == nil {
			return fmt.Errorf("%s: no owner", p)
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			if p != "." {
				if err := to.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
					return err
				}
				res.Dirs++
			}
			if err := to.Lchown(p, uid, gid); err != nil {
				return err
			}
			if err := to.Chmod(p, mode.Perm()); err != nil {
				return err
			}
			dirs = append(dirs, dirTimes{p, info.ModTime()})
		case mode&fs.ModeSymlink != 0:
			target, err := from.Readlink(p)
			if err != nil {
				return err
			}
			if cur, err := to.Readlink(p); err == nil && cur == target {
				return nil
			}
			if err := to.RemoveAll(p); err != nil {
				return err
			}
			if err := to.Symlink(target, p); err != nil {
				return err
			}
			if err := to.Lchown(p, uid, gid); err != nil {
				return err
			}
			res.Links++
		case mode.IsRegular():
			if int(st.Uid) != uid && (st.Uid != 0 || st.Nlink > 1) {
				res.Skipped = append(res.Skipped, p)
				return nil
			}
			if cur, err := to.Lstat(p); err == nil && cur.Mode().IsRegular() {
				if cur.Size() == info.Size() && cur.ModTime().Equal(info.ModTime()) || o.KeepNewer && cur.ModTime().After(info.ModTime()) {
					return nil
				}
			}
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := links[key]; ok && st.Nlink > 1 {
				if err := to.RemoveAll(p); err != nil {
					return err
				}
				return to.Link(first, p)
			}
			n, err := copyFile(from, to, p, info, uid, gid)
			if err != nil {
				return err
			}
			if st.Nlink > 1 {
				links[key] = p
			}
			res.Files++
			res.Bytes += n
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("volume: copy %s: %w", src, err)
	}
	// Directory times last: adding entries changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := to.Chtimes(dirs[i].name, dirs[i].t, dirs[i].t); err != nil {
			return res, fmt.Errorf("volume: copy %s: %w", src, err)
		}
	}
	return res, nil
}

func copyFile(from, to *os.Root, p string, info fs.FileInfo, uid, gid int) (int64, error) {
	in, err := from.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	if cur, err := to.Lstat(p); err == nil && !cur.Mode().IsRegular() {
		if err := to.RemoveAll(p); err != nil {
			return 0, err
		}
	}
	out, err := to.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if err == nil {
		err = out.Chown(uid, gid)
	}
	if err == nil {
		err = out.Chmod(info.Mode().Perm())
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = to.Chtimes(p, info.ModTime(), info.ModTime())
	}
	return n, err
}
