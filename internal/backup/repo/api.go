package repo

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// KeySize is the size in bytes of a key-encryption key (KEK) and of the
// repository's master key.
const KeySize = 32

// Errors callers can test for with errors.Is.
var (
	// ErrNotInitialized: the bucket holds no repository (no config).
	ErrNotInitialized = errors.New("backup repository not initialized")
	// ErrAlreadyInitialized: Init found an existing repository.
	ErrAlreadyInitialized = errors.New("backup repository already initialized")
	// ErrWrongKey: no key file of the repository opens with the given KEK.
	ErrWrongKey = errors.New("wrong key for backup repository")
	// ErrCorrupt: an object failed authentication or its content does not
	// match its id (tampering or storage damage).
	ErrCorrupt = errors.New("backup repository object corrupt")
	// ErrSnapshotNotFound: no snapshot has the given id (or prefix).
	ErrSnapshotNotFound = errors.New("snapshot not found")
	// ErrFileNotFound: the snapshot has no stream of that name.
	ErrFileNotFound = errors.New("file not found in snapshot")
	// ErrLocked: a conflicting lock was held until the caller's context
	// ended (or Options.LockWait passed).
	ErrLocked = errors.New("backup repository locked")
)

// ChunkID names a chunk: HMAC-SHA256 of its plaintext under the
// repository's id key, so ids reveal nothing about content to someone
// without the key. It marshals as lowercase hex.
type ChunkID [32]byte

// String returns the id in hex.
func (id ChunkID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText implements encoding.TextMarshaler (hex).
func (id ChunkID) MarshalText() ([]byte, error) {
	return []byte(hex.EncodeToString(id[:])), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (hex).
func (id *ChunkID) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(id) {
		return fmt.Errorf("chunk id: want %d hex digits, got %d", 2*len(id), len(b))
	}
	_, err := hex.Decode(id[:], b)
	return err
}

// Options tune a Repo. The zero value (or nil) is usable.
type Options struct {
	// Now is the clock (locks, snapshot times). Default time.Now.
	Now func() time.Time
	// Owner describes this process in lock files (e.g. "shard-3 pid 123").
	Owner string
	// LockTTL is how long a lock stays valid without a refresh; a lock
	// older than that belongs to a dead process and is ignored and removed.
	// Locks are refreshed every LockTTL/3. Default 30 minutes.
	LockTTL time.Duration
	// LockPoll is how often a waiting lock request looks again. Default 2s.
	LockPoll time.Duration
	// PackSize is the target size of a pack object. Default 16 MiB.
	PackSize int
	// Uploads bounds parallel pack uploads. Default 4.
	Uploads int
	// Workers bounds parallel hashing/compression/encryption per stream,
	// and the zstd encoders in use at once across the Repo's backups.
	// Default GOMAXPROCS (at most 8).
	Workers int
	// ReadAhead is how many chunks a restore stream fetches in parallel.
	// Default 4.
	ReadAhead int
}

// BackupOptions describe a snapshot being written.
type BackupOptions struct {
	// Site is the site (uid or name) the snapshot belongs to; required.
	Site string
	// Host is the shard or machine that took the snapshot.
	Host string
	// Tags are free-form labels (e.g. "daily", "pre-update").
	Tags []string
	// Meta is the caller's own record (site spec, WordPress core version,
	// database engine, ...), stored verbatim (encrypted) in the manifest.
	Meta json.RawMessage
	// Progress, when set, is called from the backup's goroutines with the
	// running totals; it must be cheap and safe for concurrent use.
	Progress func(Progress)
}

// Progress is a running total reported to progress callbacks.
type Progress struct {
	// BytesRead is the plaintext read from the caller's streams so far.
	BytesRead int64
	// BytesNew is the plaintext of chunks not yet in the repository.
	BytesNew int64
	// BytesStored is what was uploaded (packs, compressed and encrypted).
	BytesStored int64
	// BytesReused is the plaintext of unchanged streams recorded with
	// AddUnchanged, i.e. not read at all.
	BytesReused int64
}

// Snapshot is a backup manifest: which streams a site had at a time, and
// how to rebuild them from chunks. Stored encrypted under snapshots/<ID>.
type Snapshot struct {
	// ID is the snapshot's object name: SHA-256 (hex) of its stored bytes.
	// Set when loading, not stored inside.
	ID    string          `json:"-"`
	Time  time.Time       `json:"time"`
	Site  string          `json:"site"`
	Host  string          `json:"host,omitempty"`
	Tags  []string        `json:"tags,omitempty"`
	Meta  json.RawMessage `json:"meta,omitempty"`
	Files []FileEntry     `json:"files"`
	Stats SnapshotStats   `json:"stats"`
}

// File returns the entry of the named stream.
func (s *Snapshot) File(name string) (*FileEntry, bool) {
	for i := range s.Files {
		if s.Files[i].Name == name {
			return &s.Files[i], true
		}
	}
	return nil, false
}

// HasTag reports whether the snapshot carries the tag.
func (s *Snapshot) HasTag(tag string) bool {
	for _, t := range s.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// FileEntry is one named stream of a snapshot.
type FileEntry struct {
	Name string `json:"name"`
	// Size is the stream's length in bytes.
	Size int64 `json:"size"`
	// SHA256 is the hex SHA-256 of the whole stream; restores check it.
	SHA256 string `json:"sha256"`
	// Mode is optional, for the caller (e.g. file permissions).
	Mode fs.FileMode `json:"mode,omitempty"`
	// ModTime is optional, for the caller.
	ModTime time.Time `json:"mtime,omitzero"`
	// Inode and CTime are optional, for the caller (to tell whether a file
	// is unchanged since, see Backup.AddUnchanged).
	Inode uint64    `json:"inode,omitempty"`
	CTime time.Time `json:"ctime,omitzero"`
	// Chunks lists the stream's content in order.
	Chunks []ChunkID `json:"chunks"`
}

// SnapshotStats are the sizes of one backup.
type SnapshotStats struct {
	Files int `json:"files"`
	// TotalBytes is the plaintext size of all streams.
	TotalBytes int64 `json:"total_bytes"`
	// TotalChunks counts chunk references (with repeats).
	TotalChunks int `json:"total_chunks"`
	// NewChunks / NewBytes: chunks (and their plaintext) that this backup
	// added to the repository; the rest were deduplicated.
	NewChunks int   `json:"new_chunks"`
	NewBytes  int64 `json:"new_bytes"`
	// ReusedFiles / ReusedBytes: streams recorded with AddUnchanged (their
	// chunks referenced again without reading them) and their size.
	ReusedFiles int   `json:"reused_files,omitempty"`
	ReusedBytes int64 `json:"reused_bytes,omitempty"`
	// StoredBytes is what this backup uploaded: packs (compressed and
	// encrypted) and its index.
	StoredBytes int64         `json:"stored_bytes"`
	Duration    time.Duration `json:"duration"`
}

// SnapshotFilter selects snapshots; zero fields match everything.
type SnapshotFilter struct {
	Site string
	Host string
	// Tags: a snapshot must carry all of them.
	Tags []string
}

// Match reports whether the snapshot passes the filter.
func (f SnapshotFilter) Match(s *Snapshot) bool {
	if f.Site != "" && s.Site != f.Site {
		return false
	}
	if f.Host != "" && s.Host != f.Host {
		return false
	}
	for _, t := range f.Tags {
		if !s.HasTag(t) {
			return false
		}
	}
	return true
}

// PruneOptions tune Prune.
type PruneOptions struct {
	// MaxUnused is the fraction (0..1) of a pack's bytes that may be
	// unused before the pack is repacked. Default 0 (repack any pack with
	// unused data), which gives back all space. Fully unused packs are
	// always deleted.
	MaxUnused float64
	// DryRun plans without changing anything.
	DryRun bool
}

// PruneReport says what Prune did (or would do, in a dry run).
type PruneReport struct {
	Snapshots      int   `json:"snapshots"`
	PacksDeleted   int   `json:"packs_deleted"`
	PacksRepacked  int   `json:"packs_repacked"`
	PacksWritten   int   `json:"packs_written"`
	ChunksRemoved  int   `json:"chunks_removed"`
	BytesFreed     int64 `json:"bytes_freed"`
	BytesRepacked  int64 `json:"bytes_repacked"`
	UnindexedPacks int   `json:"unindexed_packs"` // left by killed backups
	IndexFiles     int   `json:"index_files"`     // index files replaced
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// ReadData downloads every pack and checks every chunk (decrypts,
	// decompresses, recomputes its id). Without it Verify checks
	// snapshots, index files, and that every referenced chunk is indexed in
	// a pack that exists and is large enough.
	ReadData bool
	// Progress, when set, gets the number of pack bytes read so far.
	Progress func(bytesRead int64)
}

// VerifyReport lists what Verify found.
type VerifyReport struct {
	Snapshots int   `json:"snapshots"`
	Indexes   int   `json:"indexes"`
	Packs     int   `json:"packs"`
	Chunks    int   `json:"chunks"`
	BytesRead int64 `json:"bytes_read"`
	// Problems are the damaged or missing objects and chunks.
	Problems []Problem `json:"problems,omitempty"`
	// DamagedChunks are referenced chunks that cannot be read back intact
	// (damaged, or missing from index or storage), sorted.
	DamagedChunks []ChunkID `json:"damaged_chunks,omitempty"`
	// AffectedSnapshots are the ids of the snapshots that reference a
	// damaged chunk, or whose own manifest is damaged, sorted.
	AffectedSnapshots []string `json:"affected_snapshots,omitempty"`
}

// OK reports whether Verify found nothing wrong.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Problem is one finding of Verify.
type Problem struct {
	// Kind is "snapshot", "index", "pack", "chunk" or "missing".
	Kind string `json:"kind"`
	// Object is the storage key concerned (empty for a missing chunk).
	Object string `json:"object,omitempty"`
	// Chunk is set for chunk-level findings.
	Chunk *ChunkID `json:"chunk,omitempty"`
	Err   string   `json:"error"`
}

// RepoStats summarise a repository.
type RepoStats struct {
	Snapshots  int `json:"snapshots"`
	Packs      int `json:"packs"`
	IndexFiles int `json:"index_files"`
	Chunks     int `json:"chunks"`
	// RawBytes is the plaintext size of all unique chunks.
	RawBytes int64 `json:"raw_bytes"`
	// StoredBytes is the size of the packs as stored.
	StoredBytes int64 `json:"stored_bytes"`
}

// Interface check: the methods callers build on. Implemented in the other
// files of the package.
var _ interface {
	ID() string
	Close() error
	NewBackup(context.Context, BackupOptions) (*Backup, error)
	ListSnapshots(context.Context, SnapshotFilter) ([]*Snapshot, error)
	LoadSnapshot(context.Context, string) (*Snapshot, error)
	DeleteSnapshot(context.Context, string) error
	Prune(context.Context, PruneOptions) (PruneReport, error)
	Verify(context.Context, VerifyOptions) (*VerifyReport, error)
	Stats(context.Context) (RepoStats, error)
	AddKey(context.Context, []byte) (string, error)
	RemoveKey(context.Context, string) error
} = (*Repo)(nil)
