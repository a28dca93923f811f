package shard

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"regexp"
	"strings"
	"syscall"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// transfer stores
	"gocloud.dev/gcerrors"
)

// The transfer store holds a moving site's export between the source's
// export and the target's import, under moves/<site uid>/<move id>/:
//
//	<attempt>/database.sql.gz  the database dump (gzip)
//	<attempt>/files.tar.gz     the site's own files: wp-content without the
//	                           links into the shared core
//	<attempt>/secrets.json     the site's WordPress salts (not its database
//	                           password: the target makes its own)
//	manifest.json              written last: the attempt's objects with
//	                           their sizes and SHA-256
//
// Every export attempt writes its objects under a fresh attempt key, and
// only the manifest commits one: an export without a manifest (or whose
// objects do not match it) is partial, deleted and redone.

const manifestVersion = 1

// manifest commits a complete export.
type manifest struct {
	Version int              `json:"version"`
	SiteUID string           `json:"site_uid"`
	MoveID  string           `json:"move_id"`
	Source  string           `json:"source"`
	Created time.Time        `json:"created"`
	Objects []transferObject `json:"objects"`
}

// transferObject is one object of an export.
type transferObject struct {
	Name   string `json:"name"` // database.sql.gz, files.tar.gz, secrets.json
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func (m *manifest) object(name string) (transferObject, error) {
	for _, o := range m.Objects {
		if o.Name == name {
			return o, nil
		}
	}
	return transferObject{}, fmt.Errorf("export lacks %s", name)
}

// Object names in an export.
const (
	objDatabase = "database.sql.gz"
	objFiles    = "files.tar.gz"
	objSecrets  = "secrets.json"
)

// exportedSecrets is what of a site's secrets travels with it.
type exportedSecrets struct {
	Salts json.RawMessage `json:"salts"`
}

var safeKeyPart = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$`)

// keyPart turns an identifier into one safe path element (its SHA-256
// prefix when it is not one already).
func keyPart(id string) string {
	if safeKeyPart.MatchString(id) {
		return id
	}
	h := sha256.Sum256([]byte(id))
	return "h" + hex.EncodeToString(h[:12])
}

// transferPrefix is where the export of move moveID of site uid lives.
func transferPrefix(uid, moveID string) string {
	return "moves/" + keyPart(uid) + "/" + keyPart(moveID) + "/"
}

// openTransfer opens the transfer store. A file:// store is made root's
// alone (directories 0700, objects 0600): it holds databases and secrets.
func (s *Shard) openTransfer(ctx context.Context) (*blob.Bucket, error) {
	if s.cfg.TransferURL == "" {
		return nil, errors.New("no transfer store configured (shard.Config.TransferURL)")
	}
	u, err := url.Parse(s.cfg.TransferURL)
	if err != nil {
		return nil, fmt.Errorf("transfer store: %w", err)
	}
	if u.Scheme == "file" {
		q := u.Query()
		for k, v := range map[string]string{"create_dir": "1", "dir_file_mode": "0700", "no_tmp_dir": "1", "metadata": "skip"} {
			if !q.Has(k) {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode()
		if u.Host == "" || u.Host == "localhost" {
			if err := os.MkdirAll(u.Path, 0o700); err != nil {
				return nil, fmt.Errorf("transfer store: %w", err)
			}
			if err := os.Chmod(u.Path, 0o700); err != nil {
				return nil, fmt.Errorf("transfer store: %w", err)
			}
		}
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("transfer store: %w", err)
	}
	return b, nil
}

// writerOptions makes a file-backed object root-only before data goes in.
var writerOptions = &blob.WriterOptions{
	ContentType: "application/octet-stream",
	BeforeWrite: func(as func(any) bool) error {
		var f *os.File
		if as(&f) {
			return f.Chmod(0o600)
		}
		return nil
	},
}

// writeObject writes what fn produces to key and returns its size and
// hash. On failure the write is abandoned (no object appears).
func writeObject(ctx context.Context, b *blob.Bucket, name, key string, fn func(io.Writer) error) (transferObject, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.NewWriter(wctx, key, writerOptions)
	if err != nil {
		return transferObject{}, fmt.Errorf("write %s: %w", name, err)
	}
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, h)}
	if err := fn(cw); err != nil {
		cancel()
		_ = w.Close()
		return transferObject{}, fmt.Errorf("write %s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return transferObject{}, fmt.Errorf("write %s: %w", name, err)
	}
	return transferObject{Name: name, Key: key, Size: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// readManifest reads the manifest at key; (nil, nil) when there is none.
func readManifest(ctx context.Context, b *blob.Bucket, key string) (*manifest, error) {
	data, err := b.ReadAll(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	if m.Version != manifestVersion {
		return nil, fmt.Errorf("manifest %s has version %d, want %d", key, m.Version, manifestVersion)
	}
	return &m, nil
}

// complete reports whether every object of m is in the store with its size
// (hashes are checked as the target reads them).
func (m *manifest) complete(ctx context.Context, b *blob.Bucket) bool {
	for _, name := range []string{objDatabase, objFiles, objSecrets} {
		o, err := m.object(name)
		if err != nil {
			return false
		}
		a, err := b.Attributes(ctx, o.Key)
		if err != nil || a.Size != o.Size {
			return false
		}
	}
	return true
}

// openObject returns a reader of o that fails, instead of ending, when what
// it read does not match o's size and hash.
func openObject(ctx context.Context, b *blob.Bucket, o transferObject) (io.ReadCloser, error) {
	r, err := b.NewReader(ctx, o.Key, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", o.Name, err)
	}
	return &verifyingReader{r: r, o: o, h: sha256.New()}, nil
}

type verifyingReader struct {
	r io.ReadCloser
	o transferObject
	h hash.Hash
	n int64
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		if v.n != v.o.Size || hex.EncodeToString(v.h.Sum(nil)) != v.o.SHA256 {
			return n, fmt.Errorf("%s: size or SHA-256 differs from the manifest (corrupt export)", v.o.Name)
		}
	}
	return n, err
}

// finish reads the rest and reports whether the whole object matched.
func (v *verifyingReader) finish() error {
	_, err := io.Copy(io.Discard, v)
	return err
}

func (v *verifyingReader) Close() error { return v.r.Close() }

// deletePrefix deletes every object under prefix.
func deletePrefix(ctx context.Context, b *blob.Bucket, prefix string) error {
	it := b.List(&blob.ListOptions{Prefix: prefix})
	var errs []error
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if obj.IsDir {
			continue
		}
		if err := b.Delete(ctx, obj.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			errs = append(errs, fmt.Errorf("delete %s: %w", obj.Key, err))
		}
	}
	return errors.Join(errs...)
}

// tarTree writes the directories and regular files below dir to w as a tar
// stream. Symbolic links (the docroot's links into the shared core, or
// anything a tenant planted) and special files are left out; every file is
// opened inside dir without following links, so a link swapped in cannot
// make root read a file elsewhere.
func tarTree(dir string, w io.Writer) error { return tarTreeWith(dir, w, nil) }

// paxStream is the PAX record of a header-only tar entry whose content is
// stored elsewhere (a backup's own stream for a large file; see
// backupFiles): its value is the stream's name.
const paxStream = "AIPRESS.stream"

// tarTreeWith is tarTree where the files named in external (relative,
// slash-separated path → stream name) are written as header-only entries
// that carry the stream's name (paxStream) instead of their content.
func tarTreeWith(dir string, w io.Writer, external map[string]string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tw := tar.NewWriter(w)
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		switch {
		case d.IsDir():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: int64(info.Mode().Perm()), ModTime: info.ModTime()})
		case d.Type().IsRegular():
			if stream, ok := external[p]; ok {
				info, err := d.Info()
				if err != nil {
					return err
				}
				return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: int64(info.Mode().Perm()), ModTime: info.ModTime(),
					Format: tar.FormatPAX, PAXRecords: map[string]string{paxStream: stream}})
			}
			f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			if !st.Mode().IsRegular() {
				return nil
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: int64(st.Mode().Perm()), Size: st.Size(), ModTime: st.ModTime()}); err != nil {
				return err
			}
			_, err = io.CopyN(tw, f, st.Size())
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", dir, err)
	}
	return tw.Close()
}

// untarTree extracts a tarTree stream into dir, inside dir only: names are
// checked, nothing is written through a link, and whatever is already at a
// name the archive has a file for (a core link of a fresh docroot, a file
// or a hard link a tenant put there) is replaced, never written into; only
// a directory is merged with the archive's. owner gives each entry's owner
// (-1: leave it).
//
// The archive is bad, and extraction stops with an error, at anything
// tarTree never writes: a name that is absolute or leaves dir, a duplicate
// name, a link, a device or another special entry, a sparse file (its holes
// would expand to any size). Modes keep no setuid, setgid or sticky bit and
// no group or other write permission.
func untarTree(dir string, r io.Reader, owner func(rel string) (uid, gid int)) error {
	return untarTreeWith(dir, r, owner, nil)
}

// untarTreeWith is untarTree for a tarTreeWith stream: the content of an
// entry that names a stream comes from open(stream), read to its end.
func untarTreeWith(dir string, r io.Reader, owner func(rel string) (uid, gid int), open func(stream string) (io.ReadCloser, error)) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("extract: %w", err)
		}
		name := path.Clean(strings.TrimSuffix(hdr.Name, "/"))
		if !fs.ValidPath(name) || name == "." {
			return fmt.Errorf("extract: invalid name %q", hdr.Name)
		}
		if seen[name] {
			return fmt.Errorf("extract %s: the archive has it twice", name)
		}
		seen[name] = true
		if hdr.Typeflag != tar.TypeDir && hdr.Typeflag != tar.TypeReg {
			return fmt.Errorf("extract %s: entry type %q: archives hold only directories and regular files", name, hdr.Typeflag)
		}
		if isSparse(hdr) {
			return fmt.Errorf("extract %s: a sparse file: archives never hold one", name)
		}
		// What is there already: a directory is reused for a directory;
		// anything else is removed first, so a link is never followed.
		if fi, err := root.Lstat(name); err == nil {
			switch {
			case fi.IsDir() && hdr.Typeflag == tar.TypeDir:
			case fi.IsDir():
				return fmt.Errorf("extract %s: a directory is in the way of the archive's file", name)
			default:
				if err := root.Remove(name); err != nil {
					return fmt.Errorf("extract: %w", err)
				}
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("extract: %w", err)
		}
		mode := fs.FileMode(hdr.Mode).Perm() &^ 0o022
		uid, gid := owner(name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("extract: %w", err)
			}
			// Mkdir found something: it must be a directory (not one put
			// there since the check above).
			if fi, err := root.Lstat(name); err != nil || !fi.IsDir() {
				return fmt.Errorf("extract %s: not a directory after creating it", name)
			}
			if uid >= 0 {
				if err := root.Lchown(name, uid, gid); err != nil {
					return fmt.Errorf("extract: %w", err)
				}
			}
			if err := root.Chmod(name, mode|0o700); err != nil {
				return fmt.Errorf("extract: %w", err)
			}
		case tar.TypeReg:
			var content io.Reader = tr
			if stream, ok := hdr.PAXRecords[paxStream]; ok {
				if open == nil {
					return fmt.Errorf("extract %s: its content is in stream %q, which this archive's reader lacks", name, stream)
				}
				rc, err := open(stream)
				if err != nil {
					return fmt.Errorf("extract %s: %w", name, err)
				}
				content = rc
			}
			// O_EXCL: a name made again since the removal above (a link)
			// fails rather than being written through.
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
			if err != nil {
				closeReader(content)
				return fmt.Errorf("extract: %w", err)
			}
			_, err = io.Copy(f, content)
			closeReader(content)
			if err == nil && uid >= 0 {
				err = f.Chown(uid, gid)
			}
			if err == nil {
				err = f.Chmod(mode)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil && !hdr.ModTime.IsZero() {
				err = root.Chtimes(name, hdr.ModTime, hdr.ModTime)
			}
			if err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
		}
	}
}

// isSparse reports whether hdr is a sparse file (the old GNU type or the
// PAX GNU.sparse records), whose holes archive/tar fills in as it reads: a
// small archive could declare a file of any size.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// closeReader closes r if it is an io.Closer.
func closeReader(r io.Reader) {
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}

// gzipTo runs fn on a gzip writer over w.
func gzipTo(w io.Writer, fn func(io.Writer) error) error {
	gz := gzip.NewWriter(w)
	if err := fn(gz); err != nil {
		return err
	}
	return gz.Close()
}
