package shard

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
//	                           their sizes and SHA-256, authenticated
//	                           (signedManifest)
//
// Every export attempt writes its objects under a fresh attempt key, and
// only the manifest commits one: an export without a manifest (or whose
// objects do not match it) is partial, deleted and redone.
//
// The store is shared by every shard, and what it holds is loaded into a
// site's database as the target imports it; so the target trusts nothing
// in it by itself. The manifest carries an HMAC-SHA256 under the move's key
// (Config.MoveKey: the control plane derives it from a platform secret and
// hands it to the move's source and target only): an export someone wrote
// into the store without the key is refused as a whole. Each object is
// copied to a root-only file on the target and checked against the
// manifest's size and SHA-256 before a byte of it is used (fetchObject).

// manifestVersion 2: signed (version 1 manifests carried no MAC and are
// refused).
const manifestVersion = 2

// maxManifestBytes bounds what readManifest reads.
const maxManifestBytes = 1 << 20

// signedManifest is the content of manifest.json: the manifest's JSON and
// its MAC, HMAC-SHA256(move key, manifestMACContext + Manifest), hex.
type signedManifest struct {
	Version  int             `json:"version"`
	Manifest json.RawMessage `json:"manifest"`
	MAC      string          `json:"hmac_sha256"`
}

// manifestMACContext separates the manifest's MAC from any other use of a
// move key.
const manifestMACContext = "aipress transfer manifest v2\x00"

// errManifestAuth is the error of an export whose manifest does not carry
// the move's MAC.
var errManifestAuth = errors.New("its manifest is not authenticated by this move's key (written by someone other than the move's source?): refusing the export")

func manifestMAC(key, raw []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(manifestMACContext))
	m.Write(raw)
	return m.Sum(nil)
}

// manifest commits a complete export.
type manifest struct {
	Version int              `json:"version"`
	SiteUID string           `json:"site_uid"`
	MoveID  string           `json:"move_id"`
	Source  string           `json:"source"`
	Created time.Time        `json:"created"`
	Objects []transferObject `json:"objects"`
	// CoreVersion is the WordPress core the site ran on the source (its
	// database is at that core's version); "" from sources before several
	// cores.
	CoreVersion string `json:"core_version,omitempty"`
	// A pre-copy's (a move's first export, made while the site serves):
	// the database server's clock just before the dump (MariaDB's Now)
	// and its tables' definitions (TableSchemas), so that the final
	// export can send only what changed since.
	DBSince int64             `json:"db_since,omitempty"`
	Schemas map[string]string `json:"schemas,omitempty"`
	// A final export's after a pre-copy: Delta says the database object
	// holds only the tables that changed since the pre-copy; Tables are
	// all the database's tables (the target drops the others).
	Delta  bool     `json:"delta,omitempty"`
	Tables []string `json:"tables,omitempty"`
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

// signManifest returns the content of manifest.json for m under macKey.
func signManifest(m *manifest, macKey []byte) ([]byte, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	// Compact (an indenting encoder would re-indent Manifest, and the MAC
	// is over its exact bytes as stored).
	out, err := json.Marshal(signedManifest{Version: manifestVersion, Manifest: raw, MAC: hex.EncodeToString(manifestMAC(macKey, raw))})
	if err != nil {
		return nil, err
	}
	var back signedManifest
	if err := json.Unmarshal(out, &back); err != nil || !bytes.Equal(back.Manifest, raw) {
		return nil, fmt.Errorf("sign manifest: its bytes change when stored (%v)", err)
	}
	return out, nil
}

// readManifest reads the manifest at key and checks its MAC under macKey;
// (nil, nil) when there is none. A manifest without the MAC, or with
// another, gives an error wrapping errManifestAuth.
func readManifest(ctx context.Context, b *blob.Bucket, key string, macKey []byte) (*manifest, error) {
	r, err := b.NewReader(ctx, key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxManifestBytes+1))
	r.Close()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if len(data) > maxManifestBytes {
		return nil, fmt.Errorf("export %s: %w (larger than %d bytes)", key, errManifestAuth, maxManifestBytes)
	}
	var sm signedManifest
	if err := json.Unmarshal(data, &sm); err != nil {
		return nil, fmt.Errorf("export %s: %w (not a signed manifest: %v)", key, errManifestAuth, err)
	}
	if sm.Version != manifestVersion {
		return nil, fmt.Errorf("export %s: %w (manifest version %d, want %d)", key, errManifestAuth, sm.Version, manifestVersion)
	}
	mac, err := hex.DecodeString(sm.MAC)
	if err != nil || len(sm.Manifest) == 0 || !hmac.Equal(mac, manifestMAC(macKey, sm.Manifest)) {
		return nil, fmt.Errorf("export %s: %w", key, errManifestAuth)
	}
	var m manifest
	if err := json.Unmarshal(sm.Manifest, &m); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	if m.Version != manifestVersion {
		return nil, fmt.Errorf("manifest %s has version %d, want %d", key, m.Version, manifestVersion)
	}
	return &m, nil
}

// complete reports whether every object of m is in the store with its size
// (the target checks hashes before it uses an object: fetchObject).
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

// fetchObject copies object o of an export to a new root-only file in dir
// and checks it against the manifest: it reads at most o.Size+1 bytes and
// fails unless there are exactly o.Size with o.SHA256. Only then is the
// file returned, at its start; nothing of a damaged or substituted object
// reaches the caller. The caller closes the file (which removes it).
func fetchObject(ctx context.Context, b *blob.Bucket, o transferObject, dir string) (*localObject, error) {
	if o.Size < 0 || len(o.SHA256) != 2*sha256.Size {
		return nil, fmt.Errorf("%s: the manifest gives no size or SHA-256", o.Name)
	}
	r, err := b.NewReader(ctx, o.Key, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", o.Name, err)
	}
	defer r.Close()
	f, err := os.CreateTemp(dir, "object-*") // 0600, in a root-only directory
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", o.Name, err)
	}
	lo := &localObject{File: f}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, o.Size+1))
	if err == nil && (n != o.Size || hex.EncodeToString(h.Sum(nil)) != o.SHA256) {
		err = fmt.Errorf("%s: size or SHA-256 differs from the manifest (a corrupt or substituted export): refusing it", o.Name)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		lo.Close()
		return nil, fmt.Errorf("read %s: %w", o.Name, err)
	}
	return lo, nil
}

// localObject is a verified copy of a transfer object; Close removes it.
type localObject struct{ *os.File }

func (l *localObject) Close() error {
	err := l.File.Close()
	if rerr := os.Remove(l.Name()); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

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

// tenantFileRefused reports whether a file of a site's uploads (p, relative
// to wp-content; st its stat from the open descriptor) must be left out of
// what the shard reads as root for the site — backups, move exports: a file
// with more than one name (a hard link, maybe to a root-only file such as
// /etc/shadow) or owned by anyone but the uploads directory's owner (the
// site's user). A backup and a restore would otherwise hand the site a copy
// of a file it could not read. The edge serves uploads by the same rule.
func tenantFileRefused(root *os.Root, p string, st fs.FileInfo) bool {
	if p != "uploads" && !strings.HasPrefix(p, "uploads/") {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	if sys.Nlink != 1 {
		return true
	}
	dir, err := root.Lstat("uploads")
	if err != nil {
		return true
	}
	d, ok := dir.Sys().(*syscall.Stat_t)
	return !ok || !dir.IsDir() || d.Uid != sys.Uid
}

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
			if !st.Mode().IsRegular() || tenantFileRefused(root, p, st) {
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
