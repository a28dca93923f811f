package repos

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/backup/repo"
)

// backupInto writes a snapshot holding one file into repository name as a
// shard would (with its access key) and returns its id.
func backupInto(t *testing.T, m *Manager, name, content string) string {
	t.Helper()
	ctx := t.Context()
	a, err := m.Access(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenAccess(ctx, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := r.NewBackup(ctx, repo.BackupOptions{Site: "a.com", Host: name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddStream(ctx, "database.sql", strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	snap, err := b.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return snap.ID
}

// readBack opens repository name as a shard agent does (FetchAndOpen over
// Access) and reads the snapshot's file.
func readBack(ctx context.Context, m *Manager, name, id string) (string, error) {
	r, err := FetchAndOpen(ctx, func(ctx context.Context) (Access, error) { return m.Access(ctx, name) }, nil)
	if err != nil {
		return "", err
	}
	defer r.Close()
	snap, err := r.LoadSnapshot(ctx, id)
	if err != nil {
		return "", err
	}
	rc, err := r.OpenStream(ctx, snap, "database.sql")
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// TestRotateKEK rotates the KEK over two repositories while a shard-like
// reader keeps fetching access and reading snapshots through a running
// Manager (KEKFile set): no read fails, snapshots taken before the rotation
// read after it, the new keys open every repository, the old KEK and the
// old access keys open none once it is finished, and the move keys did not
// change.
func TestRotateKEK(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	base := DefaultBaseURL(dir)
	kekPath := filepath.Join(dir, KEKFile)
	oldKEK, err := LoadKEK(kekPath)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := LoadPlatformSecret(filepath.Join(dir, PlatformSecretFile), oldKEK)
	if err != nil || !bytes.Equal(secret, oldKEK) {
		t.Fatalf("platform secret of a data dir without one: %v, equal to the KEK %v", err, bytes.Equal(secret, oldKEK))
	}
	m, err := New(Config{BaseURL: base, KEK: oldKEK, KEKFile: kekPath, MoveSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	moveKey := m.MoveKey("uid-a", "m1")
	names := []string{"s1", "s2"}
	snaps := map[string]string{}
	for _, n := range names {
		snaps[n] = backupInto(t, m, n, "dump of "+n)
	}
	oldAccess := map[string][]byte{}
	for _, n := range names {
		oldAccess[n] = m.AccessKey(n)
	}

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := i; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				n := names[k%len(names)]
				got, err := readBack(ctx, m, n, snaps[n])
				if err == nil && got != "dump of "+n {
					err = errors.New("read " + got)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	waitMore := func(n int64) {
		for want := ok.Load() + n; ok.Load() < want && failed.Load() == 0; {
			time.Sleep(time.Millisecond)
		}
	}
	waitMore(10)
	// A crash mid-rotation: the old key kept, the new one written, only s1
	// re-wrapped.
	if err := os.Link(kekPath, kekPath+OldSuffix); err != nil {
		t.Fatal(err)
	}
	newKEK := bytes.Repeat([]byte{9}, repo.KeySize)
	if err := writeNew(kekPath, newKEK, false); err != nil {
		t.Fatal(err)
	}
	if _, err := rewrap(ctx, base, "s1", oldKEK, newKEK, nil); err != nil {
		t.Fatal(err)
	}
	if in, _ := KEKRotationInFlight(kekPath); !in {
		t.Error("no rotation in flight")
	}
	waitMore(10)
	listed, err := ListRepos(ctx, base)
	if err != nil || strings.Join(listed, ",") != "s1,s2" {
		t.Fatalf("ListRepos = %v, %v", listed, err)
	}
	res, err := RotateKEK(ctx, kekPath, base, append(listed, "s9"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rotation: %+v", res)
	if !res.Finished || len(res.Missing) != 1 || res.Missing[0] != "s9" {
		t.Errorf("rotation result %+v", res)
	}
	waitMore(10)
	close(stop)
	wg.Wait()
	t.Logf("%d reads succeeded, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d reads failed during the rotation; first: %v", failed.Load(), firstErr.Load())
	}
	if cur, _ := os.ReadFile(kekPath); !bytes.Equal(cur, newKEK) {
		t.Error("the KEK file does not hold the new key")
	}
	if in, _ := KEKRotationInFlight(kekPath); in {
		t.Error("the old key is still kept")
	}
	for _, n := range names {
		u, _ := RepoURL(base, n)
		for what, k := range map[string][]byte{"old KEK": oldKEK, "old access key": oldAccess[n]} {
			if _, err := repo.OpenURL(ctx, u, k, false, nil); !errors.Is(err, repo.ErrWrongKey) {
				t.Errorf("%s: the %s still opens it: %v", n, what, err)
			}
		}
		for what, k := range map[string][]byte{"new KEK": newKEK, "new access key": accessKey(newKEK, n)} {
			r, err := repo.OpenURL(ctx, u, k, false, nil)
			if err != nil {
				t.Errorf("%s: the %s does not open it: %v", n, what, err)
				continue
			}
			r.Close()
		}
		// A restarted control plane with the new KEK reads the old snapshots.
		m2, err := New(Config{BaseURL: base, KEK: newKEK, KEKFile: kekPath})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := readBack(ctx, m2, n, snaps[n]); err != nil || got != "dump of "+n {
			t.Errorf("%s after a restart: %q %v", n, got, err)
		}
		m2.Close()
	}
	if !bytes.Equal(m.MoveKey("uid-a", "m1"), moveKey) {
		t.Error("the move keys changed with the KEK")
	}
	// Rotating again starts a new rotation (and finishes it).
	res, err = RotateKEK(ctx, kekPath, base, names, nil)
	if err != nil || !res.Finished || len(res.Rewrapped) != 2 {
		t.Fatalf("second rotation: %+v %v", res, err)
	}
	if again, _ := LoadPlatformSecret(filepath.Join(dir, PlatformSecretFile), newKEK); !bytes.Equal(again, secret) {
		t.Error("the platform secret changed")
	}
}
