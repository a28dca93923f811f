package purge

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Rotation of the purge secret, with overlap.
//
// The secret lives in one file (path, e.g. <data dir>/purge-secret); while
// a rotation is in flight the previous one lives beside it (path + ".prev").
// Shards write keys under the current secret into wp-config.php as they
// converge; the edge accepts keys under either secret until the rotation is
// finished (the ".prev" file removed) or its window ran out, so a site whose
// wp-config.php still carries the old key keeps purging meanwhile.
//
// Rotate and Finish are idempotent and crash-safe: Rotate first links the
// current secret to ".prev" (atomic), then replaces the current one (a new
// file renamed into place); interrupted between the two, a second Rotate
// finds ".prev" equal to the current secret and completes the replacement.
// A Keyring re-reads both files when they change, so running edges and
// shards pick a rotation up without a restart.

// PrevSuffix names the previous secret's file during a rotation.
const PrevSuffix = ".prev"

// RotationState is what a purge secret's files say.
type RotationState struct {
	// InFlight: the previous secret is still accepted (".prev" exists).
	InFlight bool `json:"in_flight"`
	// Since is when the rotation replaced the secret (the current file's
	// modification time); zero when none is in flight.
	Since time.Time `json:"since,omitzero"`
}

// Rotate starts (or completes) a rotation of the secret at path: the
// current secret becomes the previous one and a new one is current. A
// rotation already in flight is an error (finish it first), unless it was
// interrupted before the new secret was written, which this completes.
func Rotate(path string) error {
	cur, err := LoadOrCreateSecret(path)
	if err != nil {
		return err
	}
	prevPath := path + PrevSuffix
	prev, err := os.ReadFile(prevPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Link(path, prevPath); err != nil {
			return fmt.Errorf("purge secret: keep the previous one: %w", err)
		}
	case err != nil:
		return fmt.Errorf("purge secret: %w", err)
	case !bytes.Equal(prev, cur):
		return fmt.Errorf("purge secret: a rotation is in flight since the secret was replaced (%s exists); finish it first", prevPath)
	}
	// prev == cur: write the new secret.
	b := make([]byte, SecretBytes)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("purge secret: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".purge-secret-*")
	if err != nil {
		return fmt.Errorf("purge secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("purge secret: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("purge secret: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("purge secret: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("purge secret: %w", err)
	}
	return nil
}

// Finish ends a rotation: the previous secret is no longer accepted.
// Idempotent.
func Finish(path string) error {
	if err := os.Remove(path + PrevSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("purge secret: %w", err)
	}
	return nil
}

// State reports whether a rotation of the secret at path is in flight.
func State(path string) (RotationState, error) {
	if _, err := os.Stat(path + PrevSuffix); errors.Is(err, fs.ErrNotExist) {
		return RotationState{}, nil
	} else if err != nil {
		return RotationState{}, fmt.Errorf("purge secret: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return RotationState{}, fmt.Errorf("purge secret: %w", err)
	}
	return RotationState{InFlight: true, Since: fi.ModTime().UTC()}, nil
}

// Keyring is the purge secret at a path as running processes use it: the
// current secret for new keys and, during a rotation, the previous one for
// checking keys. It re-reads the files when their modification times or
// sizes change (checked at most every CheckEvery).
type Keyring struct {
	path string
	// Window, if positive, bounds the overlap: a previous secret is no
	// longer accepted once the current one is older than Window, even if
	// nobody finished the rotation.
	Window time.Duration
	// CheckEvery is how often the files are looked at (default 1s).
	CheckEvery time.Duration
	Clock      func() time.Time

	mu        sync.Mutex
	checked   time.Time
	curStamp  string
	prevStamp string
	cur, prev []byte
	since     time.Time
}

// OpenKeyring loads (creating if missing) the secret at path.
func OpenKeyring(path string) (*Keyring, error) {
	k := &Keyring{path: path, Clock: time.Now}
	if _, err := LoadOrCreateSecret(path); err != nil {
		return nil, err
	}
	if err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

func stamp(path string) (string, time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", time.Time{}, err
	}
	// The inode too: a replacement (a rename) written within the file
	// system's timestamp granularity of the old file has its mtime.
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%d/%d/%d", ino, fi.ModTime().UnixNano(), fi.Size()), fi.ModTime(), nil
}

// reload reads what changed; k.mu is held (or k is new).
func (k *Keyring) reload() error {
	cs, mod, err := stamp(k.path)
	if err != nil {
		return fmt.Errorf("purge secret: %w", err)
	}
	if cs != k.curStamp {
		b, err := os.ReadFile(k.path)
		if err != nil {
			return fmt.Errorf("purge secret: %w", err)
		}
		if len(b) != SecretBytes {
			return fmt.Errorf("purge secret %s: %d bytes, want %d", k.path, len(b), SecretBytes)
		}
		k.cur, k.curStamp, k.since = b, cs, mod
	}
	ps, _, err := stamp(k.path + PrevSuffix)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		k.prev, k.prevStamp = nil, ""
	case err != nil:
		return fmt.Errorf("purge secret: %w", err)
	case ps != k.prevStamp:
		b, err := os.ReadFile(k.path + PrevSuffix)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("purge secret: %w", err)
		}
		if len(b) != SecretBytes {
			b = nil
		}
		k.prev, k.prevStamp = b, ps
	}
	return nil
}

// secrets returns the current secret and the accepted previous one (nil
// when none); a failed re-read keeps what was loaded.
func (k *Keyring) secrets(force bool) (cur, prev []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	clock := k.Clock
	if clock == nil {
		clock = time.Now
	}
	now := clock()
	every := k.CheckEvery
	if every <= 0 {
		every = time.Second
	}
	if force || now.Sub(k.checked) >= every || now.Before(k.checked) {
		_ = k.reload() // keep the last good secrets
		k.checked = now
	}
	prev = k.prev
	if prev != nil && k.Window > 0 && now.Sub(k.since) > k.Window {
		prev = nil
	}
	return k.cur, prev
}

// Key returns site's purge key under the current secret.
func (k *Keyring) Key(site string) string {
	cur, _ := k.secrets(false)
	return Key(cur, site)
}

// Check reports whether key is site's purge key under the current secret
// or, during a rotation, the previous one. A key that matches neither is
// checked again after re-reading the files: a shard (another process) may
// have seen a rotation before this keyring's next periodic look.
func (k *Keyring) Check(site, key string) bool {
	match := func(cur, prev []byte) bool {
		if hmac.Equal([]byte(key), []byte(Key(cur, site))) {
			return true
		}
		return prev != nil && hmac.Equal([]byte(key), []byte(Key(prev, site)))
	}
	return match(k.secrets(false)) || match(k.secrets(true))
}
