package repo

import (
	"context"
	"errors"
	"io"

	"gocloud.dev/blob"
)

var errTODO = errors.New("repo: not implemented yet")

// Repo is an open backup repository. It is safe for concurrent use; one
// Repo may run several backups, restores and a verify at once.
type Repo struct {
	bucket *blob.Bucket
}

// NewKey returns a random key of KeySize bytes, suitable as a KEK.
func NewKey() ([]byte, error) { return nil, errTODO }

// Init creates a repository in the bucket, with a random master key
// wrapped by kek (KeySize bytes) and a random chunker polynomial, and opens
// it. It fails with ErrAlreadyInitialized if the bucket holds one already.
// The caller keeps ownership of the bucket (Close does not close it).
func Init(ctx context.Context, bucket *blob.Bucket, kek []byte, opts *Options) (*Repo, error) {
	return nil, errTODO
}

// Open opens the repository in the bucket with kek. It fails with
// ErrNotInitialized when there is none, ErrWrongKey when no key file opens
// with kek.
func Open(ctx context.Context, bucket *blob.Bucket, kek []byte, opts *Options) (*Repo, error) {
	return nil, errTODO
}

// OpenURL opens the bucket at url (file:///path, gs://bucket, s3://bucket
// ...; the blob drivers for file, gs and s3 are linked in) and the
// repository in it, creating the repository first if create is true and
// there is none. Close closes the bucket.
func OpenURL(ctx context.Context, url string, kek []byte, create bool, opts *Options) (*Repo, error) {
	return nil, errTODO
}

// ID returns the repository's id (hex).
func (r *Repo) ID() string { return "" }

// Close releases the repository (and the bucket if OpenURL opened it).
func (r *Repo) Close() error { return errTODO }

// AddKey wraps the master key with another KEK and stores it; the
// repository then opens with either. It returns the new key file's id.
// Key rotation: AddKey(new) then RemoveKey(old id).
func (r *Repo) AddKey(ctx context.Context, kek []byte) (string, error) { return "", errTODO }

// RemoveKey deletes a key file; it refuses to delete the last one.
func (r *Repo) RemoveKey(ctx context.Context, id string) error { return errTODO }

// KeyID returns the id of the key file this Repo was opened with.
func (r *Repo) KeyID() string { return "" }

// Backup is one backup session: add streams, then Commit writes the
// snapshot. Until Commit nothing references the uploaded packs (a killed
// backup leaves only garbage for Prune). A Backup holds a shared lock on
// the repository from NewBackup to Commit or Abort. Streams are added one
// at a time (AddStream is not for concurrent use); each stream is chunked,
// hashed, compressed and encrypted in parallel internally.
type Backup struct{}

// NewBackup starts a backup session, waiting for an exclusive lock (a
// prune's final phase) to go away.
func (r *Repo) NewBackup(ctx context.Context, opts BackupOptions) (*Backup, error) {
	return nil, errTODO
}

// AddStream reads r to EOF and stores it as the named stream of the
// snapshot. The returned entry carries size, SHA-256 and chunk list.
// Names must be unique within a snapshot.
func (b *Backup) AddStream(ctx context.Context, name string, r io.Reader) (FileEntry, error) {
	return FileEntry{}, errTODO
}

// AddStreamEntry is AddStream with the caller's Mode and ModTime recorded
// (taken from e; its other fields are filled in).
func (b *Backup) AddStreamEntry(ctx context.Context, e FileEntry, r io.Reader) (FileEntry, error) {
	return FileEntry{}, errTODO
}

// Commit uploads what is left, writes the index and then the snapshot
// manifest, releases the lock and returns the snapshot.
func (b *Backup) Commit(ctx context.Context) (*Snapshot, error) { return nil, errTODO }

// Abort ends the session without a snapshot; packs already uploaded stay
// unreferenced until Prune deletes them. Safe to call after Commit (no-op).
func (b *Backup) Abort() error { return errTODO }

// ListSnapshots loads all snapshots matching f, oldest first.
func (r *Repo) ListSnapshots(ctx context.Context, f SnapshotFilter) ([]*Snapshot, error) {
	return nil, errTODO
}

// LoadSnapshot loads the snapshot with the id, or a unique prefix of it.
func (r *Repo) LoadSnapshot(ctx context.Context, id string) (*Snapshot, error) {
	return nil, errTODO
}

// DeleteSnapshot removes a snapshot manifest (retention is the caller's
// policy); its data goes at the next Prune.
func (r *Repo) DeleteSnapshot(ctx context.Context, id string) error { return errTODO }

// OpenStream returns a reader of the named stream of the snapshot. It
// streams chunk by chunk (bounded read-ahead), checks each chunk and, at
// EOF, the stream's size and SHA-256; a mismatch is an error wrapping
// ErrCorrupt. It holds a shared lock until closed.
func (r *Repo) OpenStream(ctx context.Context, snap *Snapshot, name string) (io.ReadCloser, error) {
	return nil, errTODO
}

// OpenFile is OpenStream for an entry the caller already has.
func (r *Repo) OpenFile(ctx context.Context, f *FileEntry) (io.ReadCloser, error) {
	return nil, errTODO
}

// Prune deletes data no snapshot references. It is safe while backups run
// in other processes: see the package documentation for the locking.
func (r *Repo) Prune(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	return PruneReport{}, errTODO
}

// Verify checks the repository; see VerifyOptions. A returned error means
// Verify could not run (e.g. storage unreachable); damage is in the report.
func (r *Repo) Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	return nil, errTODO
}

// Stats summarises the repository from its index and snapshot list.
func (r *Repo) Stats(ctx context.Context) (RepoStats, error) { return RepoStats{}, errTODO }
