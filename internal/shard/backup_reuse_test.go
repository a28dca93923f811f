package shard

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/backup/repo"
)

// reuseRun backs up dir's large files (as BackupSite does) with parent and
// returns the snapshot and the bytes the backup read.
func reuseRun(t *testing.T, r *repo.Repo, dir string, parent *repo.Snapshot) (*repo.Snapshot, int64) {
	t.Helper()
	ctx := context.Background()
	// Progress comes from several goroutines; the totals only grow.
	var mu sync.Mutex
	var last repo.Progress
	b, err := r.NewBackup(ctx, repo.BackupOptions{Site: "s", Progress: func(p repo.Progress) {
		mu.Lock()
		last.BytesRead, last.BytesReused = max(last.BytesRead, p.BytesRead), max(last.BytesReused, p.BytesReused)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort()
	ext, err := backupLargeFiles(ctx, b, dir, parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(ext) != 3 {
		t.Fatalf("external files %v", ext)
	}
	snap, err := b.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last.BytesRead+last.BytesReused != snap.Stats.TotalBytes {
		t.Fatalf("progress %+v, total %d", last, snap.Stats.TotalBytes)
	}
	// Whatever was reused restores to the files' current content.
	for name, p := range ext {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		rc, err := r.OpenStream(ctx, snap, p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s restores to %d bytes (%v), want %d", name, len(got), err, len(want))
		}
	}
	// As if the parent had been taken well after the files were written
	// (files changed just before a snapshot are read again: racyWindow).
	snap.Time = time.Now().Add(2 * racyWindow)
	return snap, last.BytesRead
}

// TestBackupReusesUnchangedFiles: a large file unchanged since the parent
// snapshot is not read again; a changed mtime or size is; and an entry
// whose chunks were pruned since is read again.
func TestBackupReusesUnchangedFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := repo.OpenURL(ctx, "file://"+t.TempDir(), bytes.Repeat([]byte{7}, repo.KeySize), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rnd := rand.New(rand.NewPCG(1, 2))
	write := func(name string, n int) {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rnd.Uint32())
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("uploads/a.jpg", 700<<10)
	write("uploads/b.jpg", 300<<10)
	write("plugins/x/big.js", 200<<10)
	write("plugins/x/small.php", 1<<10) // in the tar, not a stream

	s1, read := reuseRun(t, r, dir, nil)
	if read != 1200<<10 {
		t.Fatalf("first backup read %d bytes", read)
	}
	s2, read := reuseRun(t, r, dir, s1)
	if read != 0 || s2.Stats.ReusedFiles != 3 {
		t.Fatalf("unchanged files: read %d bytes, stats %+v", read, s2.Stats)
	}
	// Same size, new mtime: read again; a new size: read again.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "uploads/a.jpg"), later, later); err != nil {
		t.Fatal(err)
	}
	write("uploads/b.jpg", 301<<10)
	s3, read := reuseRun(t, r, dir, s2)
	if read != (700+301)<<10 || s3.Stats.ReusedFiles != 1 {
		t.Fatalf("changed files: read %d bytes, stats %+v", read, s3.Stats)
	}
	// Files changed just before the parent began are not trusted.
	s3.Time = time.Now()
	if _, read := reuseRun(t, r, dir, s3); read != 1201<<10 {
		t.Fatalf("racy parent: read %d bytes", read)
	}
	// The parent's chunks pruned: everything is read again.
	all, err := r.ListSnapshots(ctx, repo.SnapshotFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if err := r.DeleteSnapshot(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Prune(ctx, repo.PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	if s5, read := reuseRun(t, r, dir, s3); read != 1201<<10 || s5.Stats.ReusedFiles != 0 {
		t.Fatalf("pruned parent: read %d bytes, stats %+v", read, s5.Stats)
	}
}
