package repo

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/restic/chunker"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// repositories
	"gocloud.dev/gcerrors"
)

// Repository layout (object keys in the bucket).
const (
	keyConfig      = "config"
	prefixKeys     = "keys/"
	prefixData     = "data/"
	prefixIndex    = "index/"
	prefixSnapshot = "snapshots/"
	prefixLocks    = "locks/"
)

const repoVersion = 1

// Repo is an open backup repository. It is safe for concurrent use; one
// Repo may run several backups, restores and a verify at once.
type Repo struct {
	bucket      *blob.Bucket
	ownsBucket  bool
	opts        Options
	keys        *keys
	master      []byte
	keyID       string
	cfg         repoConfig
	enc         *encoderPool // zstd encoders, at most Workers at once (codec.go)
	dec         *zstd.Decoder
	idx         *memIndex
	locks       *lockManager
	uploadSlots chan struct{} // bounds parallel pack uploads repo-wide
	local       bool          // a file store: no MD5 of uploads

	// Pools shared by all backups of the Repo: chunk buffers (each grown
	// to the chunks it held, up to chunker.MaxSize), compression scratch
	// buffers and chunkers (each with its 512 KiB read buffer), so that a
	// backup of many small streams does not allocate (and zero) megabytes
	// per stream; and the small buffers a stream's first bytes are read
	// into (AddStreamEntry).
	chunkBufs, scratch, chunkers, peekBufs sync.Pool

	// hookBetweenPrunePhases, for tests, runs after Prune's phase 1.
	hookBetweenPrunePhases func()
}

// repoConfig is the plaintext of the config object.
type repoConfig struct {
	Version    int         `json:"version"`
	ID         string      `json:"id"`
	Polynomial chunker.Pol `json:"chunker_polynomial"`
	Created    time.Time   `json:"created"`
}

// keyFile is the plaintext JSON of keys/<id>: the master key sealed with a
// KEK.
type keyFile struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Owner   string    `json:"owner,omitempty"`
	Sealed  []byte    `json:"sealed"` // nonce || AES-256-GCM(kek, master)
}

// NewKey returns a random key of KeySize bytes, suitable as a KEK.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("random key: %w", err)
	}
	return k, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	if v.Now == nil {
		v.Now = time.Now
	}
	if v.Owner == "" {
		host, _ := os.Hostname()
		v.Owner = fmt.Sprintf("%s pid %d", host, os.Getpid())
	}
	if v.LockTTL <= 0 {
		v.LockTTL = 30 * time.Minute
	}
	if v.LockPoll <= 0 {
		v.LockPoll = 2 * time.Second
	}
	if v.PackSize <= 0 {
		v.PackSize = 16 << 20
	}
	if v.Uploads <= 0 {
		v.Uploads = 4
	}
	if v.Workers <= 0 {
		v.Workers = min(runtime.GOMAXPROCS(0), 8)
	}
	if v.ReadAhead <= 0 {
		v.ReadAhead = 4
	}
	return v
}

// Init creates a repository in the bucket, with a random master key
// wrapped by kek (KeySize bytes) and a random chunker polynomial, and opens
// it. It fails with ErrAlreadyInitialized if the bucket holds one already.
// The caller keeps ownership of the bucket (Close does not close it).
func Init(ctx context.Context, bucket *blob.Bucket, kek []byte, opts *Options) (*Repo, error) {
	o := opts.withDefaults()
	if ok, err := bucket.Exists(ctx, keyConfig); err != nil {
		return nil, fmt.Errorf("init backup repository: %w", err)
	} else if ok {
		return nil, ErrAlreadyInitialized
	}
	master, err := NewKey()
	if err != nil {
		return nil, err
	}
	pol, err := chunker.RandomPolynomial()
	if err != nil {
		return nil, fmt.Errorf("chunker polynomial: %w", err)
	}
	r, err := newRepo(bucket, master, o)
	if err != nil {
		return nil, err
	}
	r.cfg = repoConfig{Version: repoVersion, ID: randomHex(32), Polynomial: pol, Created: o.Now().UTC()}
	// The key first: a config without a key would be an unopenable
	// repository, a key without config is just retried by the next Init.
	if r.keyID, err = r.AddKey(ctx, kek); err != nil {
		return nil, err
	}
	plain, err := json.Marshal(r.cfg)
	if err != nil {
		return nil, err
	}
	sealed := seal(r.keys.aead, nil, plain, []byte(aadConfig))
	if err := r.put(ctx, keyConfig, sealed, true); err != nil {
		_ = bucket.Delete(ctx, prefixKeys+r.keyID)
		if gcerrors.Code(err) == gcerrors.FailedPrecondition {
			return nil, ErrAlreadyInitialized
		}
		return nil, fmt.Errorf("write config: %w", err)
	}
	return r, nil
}

// Open opens the repository in the bucket with kek. It fails with
// ErrNotInitialized when there is none, ErrWrongKey when no key file opens
// with kek. The caller keeps ownership of the bucket.
func Open(ctx context.Context, bucket *blob.Bucket, kek []byte, opts *Options) (*Repo, error) {
	o := opts.withDefaults()
	sealedCfg, err := bucket.ReadAll(ctx, keyConfig)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, ErrNotInitialized
	} else if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	kekAEAD, err := newGCM(kek)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	objs, err := listAll(ctx, bucket, prefixKeys)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	for _, obj := range objs {
		data, err := bucket.ReadAll(ctx, obj.Key)
		if gcerrors.Code(err) == gcerrors.NotFound {
			continue // removed since the listing (a key rotation)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", obj.Key, err)
		}
		var kf keyFile
		if json.Unmarshal(data, &kf) != nil {
			continue
		}
		master, err := open(kekAEAD, nil, kf.Sealed, []byte(aadKey))
		if err != nil || len(master) != KeySize {
			continue
		}
		r, err := newRepo(bucket, master, o)
		if err != nil {
			return nil, err
		}
		r.keyID = strings.TrimPrefix(obj.Key, prefixKeys)
		plain, err := open(r.keys.aead, nil, sealedCfg, []byte(aadConfig))
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := json.Unmarshal(plain, &r.cfg); err != nil {
			return nil, fmt.Errorf("config: %w: %v", ErrCorrupt, err)
		}
		if r.cfg.Version != repoVersion {
			return nil, fmt.Errorf("backup repository version %d not supported", r.cfg.Version)
		}
		return r, nil
	}
	return nil, ErrWrongKey
}

// OpenURL opens the bucket at url (file:///path, gs://bucket, s3://bucket
// ...; this package links the file driver, the binary links gcsblob or
// s3blob for the others) and the
// repository in it, creating the repository first if create is true and
// there is none. Close closes the bucket. A file:// URL without a
// "metadata" parameter is opened with metadata=skip: the repository needs
// no sidecar files (they cost a file and an MD5 pass per object).
func OpenURL(ctx context.Context, url string, kek []byte, create bool, opts *Options) (*Repo, error) {
	bucket, err := blob.OpenBucket(ctx, fileURLSkipMetadata(url))
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", url, err)
	}
	r, err := Open(ctx, bucket, kek, opts)
	if errors.Is(err, ErrNotInitialized) && create {
		r, err = Init(ctx, bucket, kek, opts)
		if errors.Is(err, ErrAlreadyInitialized) { // lost a race with another Init
			r, err = Open(ctx, bucket, kek, opts)
		}
	}
	if err != nil {
		bucket.Close()
		return nil, err
	}
	r.ownsBucket = true
	return r, nil
}

// fileURLSkipMetadata adds metadata=skip to a file:// URL that does not
// say otherwise.
func fileURLSkipMetadata(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "file" {
		return s
	}
	q := u.Query()
	if q.Has("metadata") {
		return s
	}
	q.Set("metadata", "skip")
	u.RawQuery = q.Encode()
	return u.String()
}

func newRepo(bucket *blob.Bucket, master []byte, o Options) (*Repo, error) {
	k, err := deriveKeys(master)
	if err != nil {
		return nil, err
	}
	enc, err := newEncoderPool(o.Workers)
	if err != nil {
		return nil, err
	}
	dec, err := newDecoder(o.Workers)
	if err != nil {
		return nil, err
	}
	r := &Repo{
		bucket: bucket, opts: o, keys: k, master: master, enc: enc, dec: dec,
		idx:         newMemIndex(),
		uploadSlots: make(chan struct{}, o.Uploads),
	}
	// A file store (fileblob answers As(*os.FileInfo)) gains nothing from
	// an MD5 of each upload; object stores check it on receipt.
	var fi os.FileInfo
	r.local = bucket.As(&fi)
	r.locks = &lockManager{r: r}
	return r, nil
}

// ID returns the repository's id (hex).
func (r *Repo) ID() string { return r.cfg.ID }

// KeyID returns the id of the key file this Repo was opened with.
func (r *Repo) KeyID() string { return r.keyID }

// Close releases the repository (and the bucket if OpenURL opened it).
// Backups and streams still open hold their locks until they end.
func (r *Repo) Close() error {
	r.dec.Close()
	if r.ownsBucket {
		return r.bucket.Close()
	}
	return nil
}

// AddKey wraps the master key with another KEK and stores it; the
// repository then opens with either. It returns the new key file's id.
// Key rotation: AddKey(new) then RemoveKey(old id).
func (r *Repo) AddKey(ctx context.Context, kek []byte) (string, error) {
	kekAEAD, err := newGCM(kek)
	if err != nil {
		return "", fmt.Errorf("key-encryption key: %w", err)
	}
	kf := keyFile{Version: 1, Created: r.opts.Now().UTC(), Owner: r.opts.Owner,
		Sealed: seal(kekAEAD, nil, r.master, []byte(aadKey))}
	data, err := json.Marshal(kf)
	if err != nil {
		return "", err
	}
	id := randomHex(16)
	if err := r.put(ctx, prefixKeys+id, data, true); err != nil {
		return "", fmt.Errorf("write key: %w", err)
	}
	return id, nil
}

// RemoveKey deletes a key file; it refuses to delete the last one.
func (r *Repo) RemoveKey(ctx context.Context, id string) error {
	objs, err := listAll(ctx, r.bucket, prefixKeys)
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	found := false
	for _, o := range objs {
		found = found || o.Key == prefixKeys+id
	}
	if !found {
		return fmt.Errorf("key %s: not found", id)
	}
	if len(objs) < 2 {
		return errors.New("refusing to remove the repository's last key")
	}
	if err := r.bucket.Delete(ctx, prefixKeys+id); err != nil {
		return fmt.Errorf("remove key %s: %w", id, err)
	}
	return nil
}

// put writes an object; with ifNotExist an existing object is an error
// (gcerrors.FailedPrecondition).
func (r *Repo) put(ctx context.Context, key string, data []byte, ifNotExist bool) error {
	return r.putParts(ctx, key, [][]byte{data}, ifNotExist)
}

// putParts writes an object made of parts, in order, without joining
// them. Object stores get the content's MD5 to check (as blob.WriteAll
// does); a local file store does not (contents are checked by their
// SHA-256 names and authenticated encryption on every read anyway).
func (r *Repo) putParts(ctx context.Context, key string, parts [][]byte, ifNotExist bool) error {
	opts := &blob.WriterOptions{ContentType: "application/octet-stream", IfNotExist: ifNotExist}
	if !r.local {
		h := md5.New()
		for _, p := range parts {
			h.Write(p)
		}
		opts.ContentMD5 = h.Sum(nil)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := r.bucket.NewWriter(ctx, key, opts)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			cancel() // abandons the object
			_ = w.Close()
			return err
		}
	}
	return w.Close()
}

// storedObject is a listed object.
type storedObject struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// listAll lists the objects under prefix, sorted by key. A listing that
// trips over an object deleted meanwhile (file stores stat each entry) is
// retried.
func listAll(ctx context.Context, b *blob.Bucket, prefix string) ([]storedObject, error) {
	var err error
	for range 5 {
		var out []storedObject
		if out, err = listOnce(ctx, b, prefix); err == nil || gcerrors.Code(err) != gcerrors.NotFound {
			return out, err
		}
	}
	return nil, err
}

func listOnce(ctx context.Context, b *blob.Bucket, prefix string) ([]storedObject, error) {
	var out []storedObject
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		if obj.IsDir {
			continue
		}
		out = append(out, storedObject{Key: obj.Key, Size: obj.Size, ModTime: obj.ModTime})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// objectName returns the name of key under prefix if it is n lowercase hex
// digits (other objects, e.g. a file store's temporary files, are not ours).
func objectName(key, prefix string, n int) (string, bool) {
	name, ok := strings.CutPrefix(key, prefix)
	if !ok || len(name) != n {
		return "", false
	}
	for _, c := range name {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	return name, true
}

// writeFile stores a sealed, zstd-compressed object under prefix + the
// SHA-256 of its stored bytes, and returns that id.
func (r *Repo) writeFile(ctx context.Context, prefix string, plain []byte, aad string) (string, int64, error) {
	compressed := r.enc.encodeAll(plain, nil)
	sealed := seal(r.keys.aead, nil, compressed, []byte(aad))
	sum := sha256.Sum256(sealed)
	id := hex.EncodeToString(sum[:])
	if err := r.put(ctx, prefix+id, sealed, false); err != nil {
		return "", 0, fmt.Errorf("write %s%s: %w", prefix, id, err)
	}
	return id, int64(len(sealed)), nil
}

// readFile loads an object written by writeFile, checking that its
// content matches its name and authenticates.
func (r *Repo) readFile(ctx context.Context, prefix, id, aad string) ([]byte, error) {
	sealed, err := r.bucket.ReadAll(ctx, prefix+id)
	if err != nil {
		return nil, fmt.Errorf("read %s%s: %w", prefix, id, err)
	}
	return r.decodeFile(prefix+id, id, sealed, aad)
}

func (r *Repo) decodeFile(key, id string, sealed []byte, aad string) ([]byte, error) {
	sum := sha256.Sum256(sealed)
	if hex.EncodeToString(sum[:]) != id {
		return nil, fmt.Errorf("%s: %w: content does not match its id", key, ErrCorrupt)
	}
	compressed, err := open(r.keys.aead, nil, sealed, []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	plain, err := r.dec.DecodeAll(compressed, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: decompress: %v", key, ErrCorrupt, err)
	}
	return plain, nil
}

// packKey is the object key of a pack.
func packKey(id packID) string {
	h := hex.EncodeToString(id[:])
	return prefixData + h[:2] + "/" + h
}

// parsePackKey is the inverse of packKey.
func parsePackKey(key string) (packID, bool) {
	var id packID
	name := key[strings.LastIndexByte(key, '/')+1:]
	if len(name) != 64 {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(name)); err != nil {
		return id, false
	}
	return id, packKey(id) == key
}
