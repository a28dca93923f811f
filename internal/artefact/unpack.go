package artefact

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// unpack checks es as the archive of kind named name and unpacks it into
// <root>/<kind>/<digest>/<name> (an upload, org set: <root>/<kind>/<the
// folder dirName gives>/<name>): first into a temporary folder beside it,
// renamed into place, then the .complete marker. The caller holds the
// folder's lock and has removed any leftover.
func (s *Store) unpack(ctx context.Context, kind Kind, name, org, digest string, es []entry) (*Artefact, error) {
	lo, err := checkEntries(kind, name, es, s.cfg.Limits)
	if err != nil {
		return nil, err
	}
	digestDir := filepath.Join(s.cfg.Dir, string(kind), s.dirName(org, digest))
	if err := ownDir(digestDir, 0o755); err != nil {
		return nil, err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(digestDir, ".tmp-"+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	start := s.cfg.Now()
	if err := s.extract(ctx, tmp, es); err != nil {
		return nil, err
	}
	if err := os.Rename(filepath.Join(tmp, name), filepath.Join(digestDir, name)); err != nil {
		return nil, err
	}
	a := &Artefact{Kind: kind, Name: name, Digest: digest, Org: org, Version: lo.version, Main: lo.main,
		Files: lo.files, Bytes: lo.bytes, Dir: filepath.Join(digestDir, name)}
	b, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	if err := syncDir(digestDir); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(digestDir, ".complete"), b, 0o644); err != nil {
		return nil, err
	}
	s.cfg.Logger.Info("artefact unpacked", "kind", kind, "name", name, "version", a.Version, "digest", digest,
		"files", a.Files, "bytes", a.Bytes, "took", s.cfg.Now().Sub(start))
	return a, nil
}

// extract writes es below dir through an os.Root (no name can leave it),
// folders 0755 and files 0644, root's when run as root, each file's bytes
// bounded by its declared size.
func (s *Store) extract(ctx context.Context, dir string, es []entry) error {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	mkdir := func(name string) error {
		if err := r.MkdirAll(name, 0o755); err != nil {
			return err
		}
		return nil
	}
	var total int64
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.dir {
			if err := mkdir(e.name); err != nil {
				return err
			}
			continue
		}
		if d := path.Dir(e.name); d != "." {
			if err := mkdir(d); err != nil {
				return err
			}
		}
		n, err := writeEntry(r, e)
		if err != nil {
			return err
		}
		total += n
		if total > s.cfg.Limits.MaxUnpackedBytes {
			return refuse("", "more than the limit of %d unpacked bytes", s.cfg.Limits.MaxUnpackedBytes)
		}
	}
	// Modes and owners are set once everything is written: MkdirAll's
	// modes are subject to the umask.
	owner := os.Geteuid() == 0
	done := map[string]bool{}
	for _, e := range es {
		parts := strings.Split(e.name, "/")
		for i := range parts {
			p := strings.Join(parts[:i+1], "/")
			if done[p] {
				continue
			}
			done[p] = true
			mode := os.FileMode(0o755)
			if i == len(parts)-1 && !e.dir {
				mode = 0o644
			}
			if err := r.Chmod(p, mode); err != nil {
				return err
			}
			if owner {
				if err := r.Lchown(p, 0, 0); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func writeEntry(r *os.Root, e entry) (int64, error) {
	rc, err := e.open()
	if err != nil {
		return 0, refuse(e.name, "cannot be read: %v", err)
	}
	defer rc.Close()
	f, err := r.OpenFile(e.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, io.LimitReader(rc, e.size+1))
	if err != nil {
		f.Close()
		var pe *os.PathError
		if errors.As(err, &pe) {
			return 0, err // a write error of ours
		}
		return 0, refuse(e.name, "cannot be read: %v", err)
	}
	if n != e.size {
		f.Close()
		return 0, refuse(e.name, "has %d bytes where it declares %d", n, e.size)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("%s: %w", e.name, err)
	}
	return n, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
