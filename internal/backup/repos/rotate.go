package repos

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"gocloud.dev/blob"

	"github.com/aipress/aipress/internal/backup/repo"
)

// Rotation of the key-encryption key.
//
// During a rotation the previous KEK is kept beside the current one
// (OldSuffix). RotateKEK:
//
//  1. links the current KEK file to backup-kek.old (atomic) and writes a new
//     KEK in its place (a new file renamed over it); interrupted between the
//     two, the next run finds both equal and writes the new one;
//  2. re-wraps every repository: adds a key file sealed with the new KEK and
//     one with the new access key (HMAC of the new KEK), then removes the
//     key files that open with the old KEK and the old access key; each
//     step is checked before it is made, so a re-run skips what is done;
//  3. removes backup-kek.old once every repository is re-wrapped.
//
// A re-run after a crash anywhere finishes the rotation. Meanwhile a
// Manager with KEKFile set keeps working: it re-reads the KEK file when it
// changes and falls back to the old KEK for a repository not re-wrapped yet.
//
// The mesh CA and the move keys derive from the platform secret
// (LoadPlatformSecret), not from the KEK, so a KEK rotation changes neither.

// OldSuffix names the previous KEK's file during a rotation.
const OldSuffix = ".old"

// PlatformSecretFile is the file in the data dir the mesh CA and the move
// keys derive from (LoadPlatformSecret).
const PlatformSecretFile = "platform-secret"

// LoadPlatformSecret returns the secret the mesh CA (mtls.NewAuthority) and
// the site move keys (MoveKey) derive from, kept at path. A data directory
// that has none gets one holding the bytes of kek, its current KEK: those
// were the derivation's input before the two were kept apart, so the CA and
// move keys stay what they were. It never changes afterwards, whatever the
// KEK does.
func LoadPlatformSecret(path string, kek []byte) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != repo.KeySize {
			return nil, fmt.Errorf("platform secret %s: %d bytes, want %d", path, len(b), repo.KeySize)
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("platform secret: %w", err)
	}
	if len(kek) != repo.KeySize {
		return nil, fmt.Errorf("platform secret: key-encryption key of %d bytes", len(kek))
	}
	if err := writeNew(path, kek, true); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadPlatformSecret(path, kek)
		}
		return nil, fmt.Errorf("platform secret: %w", err)
	}
	return append([]byte(nil), kek...), nil
}

// writeNew writes data to path through a temporary file: linked into place
// when exclusive (an existing path is fs.ErrExist), renamed over it
// otherwise.
func writeNew(path string, data []byte, exclusive bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	if err := errors.Join(werr, serr, tmp.Close()); err != nil {
		return err
	}
	if exclusive {
		return os.Link(tmp.Name(), path)
	}
	return os.Rename(tmp.Name(), path)
}

// accessKey is the access key of repository name under kek.
func accessKey(kek []byte, name string) []byte {
	mac := hmac.New(sha256.New, kek)
	mac.Write([]byte("repo:" + name))
	return mac.Sum(nil)
}

// KEKRotation is what RotateKEK reports.
type KEKRotation struct {
	// Rewrapped are the repositories whose keys this run changed; Done
	// those that already had the new keys only.
	Rewrapped []string `json:"rewrapped"`
	Done      []string `json:"done"`
	// Missing are the named repositories that do not exist (nothing to do).
	Missing []string `json:"missing,omitempty"`
	// Finished: every repository is re-wrapped and the old KEK removed.
	Finished bool `json:"finished"`
}

// RotateKEK starts or resumes the rotation of the KEK at kekPath over the
// repositories called names under baseURL (every repository that may
// exist: a repository left out keeps opening with the old KEK only, and
// becomes unreadable once it is removed). It is idempotent.
func RotateKEK(ctx context.Context, kekPath, baseURL string, names []string, opts *repo.Options) (*KEKRotation, error) {
	cur, err := LoadKEK(kekPath)
	if err != nil {
		return nil, err
	}
	oldPath := kekPath + OldSuffix
	old, err := os.ReadFile(oldPath)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Link(kekPath, oldPath); err != nil {
			return nil, fmt.Errorf("backup key: keep the old key: %w", err)
		}
		old = cur
	} else if err != nil {
		return nil, fmt.Errorf("backup key: %w", err)
	}
	if len(old) != repo.KeySize {
		return nil, fmt.Errorf("backup key %s: %d bytes, want %d", oldPath, len(old), repo.KeySize)
	}
	if bytes.Equal(old, cur) {
		next := make([]byte, repo.KeySize)
		if _, err := rand.Read(next); err != nil {
			return nil, fmt.Errorf("backup key: %w", err)
		}
		if err := writeNew(kekPath, next, false); err != nil {
			return nil, fmt.Errorf("backup key: %w", err)
		}
		cur = next
	}
	out := &KEKRotation{}
	for _, name := range names {
		changed, err := rewrap(ctx, baseURL, name, old, cur, opts)
		if errors.Is(err, repo.ErrNotInitialized) {
			out.Missing = append(out.Missing, name)
			continue
		}
		if err != nil {
			return out, fmt.Errorf("backup repository %s: %w", name, err)
		}
		if changed {
			out.Rewrapped = append(out.Rewrapped, name)
		} else {
			out.Done = append(out.Done, name)
		}
	}
	if err := os.Remove(oldPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return out, fmt.Errorf("backup key: retire the old key: %w", err)
	}
	out.Finished = true
	return out, nil
}

// KEKRotationInFlight reports whether a rotation of the KEK at kekPath is
// unfinished (its old key is still kept).
func KEKRotationInFlight(kekPath string) (bool, error) {
	_, err := os.Stat(kekPath + OldSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// rewrap gives repository name keys under newKEK (itself and the access
// key) and removes those under oldKEK; changed says whether it wrote.
func rewrap(ctx context.Context, baseURL, name string, oldKEK, newKEK []byte, opts *repo.Options) (changed bool, err error) {
	u, err := RepoURL(baseURL, name)
	if err != nil {
		return false, err
	}
	if err := fileDir(u, false); err != nil {
		return false, err
	}
	open := func(kek []byte) (*repo.Repo, error) {
		r, err := repo.OpenURL(ctx, u, kek, false, opts)
		if errors.Is(err, repo.ErrWrongKey) {
			return nil, nil
		}
		return r, err
	}
	r, err := open(newKEK)
	if err != nil {
		return false, err
	}
	if r == nil {
		if r, err = open(oldKEK); err != nil {
			return false, err
		}
		if r == nil {
			return false, errors.New("opens with neither the old nor the new key-encryption key")
		}
		if _, err := r.AddKey(ctx, newKEK); err != nil {
			r.Close()
			return false, err
		}
		changed = true
	}
	defer r.Close()
	if probe, err := open(accessKey(newKEK, name)); err != nil {
		return changed, err
	} else if probe != nil {
		probe.Close()
	} else {
		if _, err := r.AddKey(ctx, accessKey(newKEK, name)); err != nil {
			return changed, err
		}
		changed = true
	}
	if bytes.Equal(oldKEK, newKEK) {
		return changed, nil
	}
	// Remove every key file that opens with an old key (one per key: the
	// loop ends when none opens).
	for _, k := range [][]byte{oldKEK, accessKey(oldKEK, name)} {
		for {
			o, err := open(k)
			if err != nil {
				return changed, err
			}
			if o == nil {
				break
			}
			id := o.KeyID()
			o.Close()
			if err := r.RemoveKey(ctx, id); err != nil {
				return changed, err
			}
			changed = true
		}
	}
	return changed, nil
}

// kekSource is a Manager's KEK: fixed, or read from a file (and its old
// key during a rotation), re-read when the files change.
type kekSource struct {
	path string
	mu   sync.Mutex
	// checked is when the files were last looked at; stamps say what was
	// read.
	checked        time.Time
	curMod, oldMod string // fileStamp of what was read
	cur, old       []byte
}

// fileStamp identifies a version of a file: inode (a replacement is a
// rename), modification time and size.
func fileStamp(fi os.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%d/%d/%d", ino, fi.ModTime().UnixNano(), fi.Size())
}

// keys returns the current KEK and the old one during a rotation (nil
// otherwise); force re-reads the files now.
func (k *kekSource) keys(force bool) (cur, old []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.path == "" {
		return k.cur, nil
	}
	now := time.Now()
	if force || now.Sub(k.checked) >= time.Second {
		k.checked = now
		if fi, err := os.Stat(k.path); err == nil && fileStamp(fi) != k.curMod {
			if b, err := os.ReadFile(k.path); err == nil && len(b) == repo.KeySize {
				k.cur, k.curMod = b, fileStamp(fi)
			}
		}
		if fi, err := os.Stat(k.path + OldSuffix); err == nil {
			if fileStamp(fi) != k.oldMod || k.old == nil {
				if b, err := os.ReadFile(k.path + OldSuffix); err == nil && len(b) == repo.KeySize {
					k.old, k.oldMod = b, fileStamp(fi)
				}
			}
		} else {
			k.old, k.oldMod = nil, ""
		}
	}
	return k.cur, k.old
}

// ListRepos returns the names of the repositories under baseURL (what a
// KEK rotation must re-wrap): the valid names of the directories (key
// prefixes) in it.
func ListRepos(ctx context.Context, baseURL string) ([]string, error) {
	if err := fileDir(baseURL, false); errors.Is(err, repo.ErrNotInitialized) {
		return nil, nil // no repository yet
	}
	b, err := blob.OpenBucket(ctx, baseURL)
	if err != nil {
		return nil, fmt.Errorf("backup repositories %s: %w", baseURL, err)
	}
	defer b.Close()
	var out []string
	it := b.List(&blob.ListOptions{Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("backup repositories %s: %w", baseURL, err)
		}
		if name := strings.TrimSuffix(obj.Key, "/"); obj.IsDir && ValidName(name) {
			out = append(out, name)
		}
	}
	return out, nil
}
