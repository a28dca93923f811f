package shard

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestTreeRSSAndDirSize(t *testing.T) {
	// A parent with a child: the tree's RSS covers both and is more than
	// the parent's alone.
	cmd := exec.Command("sh", "-c", "sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var tree int64
	for range 100 {
		tree = treeRSS([]int{cmd.Process.Pid})
		if tree > rss(cmd.Process.Pid) {
			break
		}
		exec.Command("sleep", "0.02").Run()
	}
	if own := rss(cmd.Process.Pid); own <= 0 || tree <= own {
		t.Errorf("tree RSS %d, parent alone %d: the child is not counted", tree, own)
	}
	if scan := treeRSSScan([]int{cmd.Process.Pid}); scan <= rss(cmd.Process.Pid) {
		t.Errorf("tree RSS through every process's parent %d, parent alone %d: the child is not counted", scan, rss(cmd.Process.Pid))
	}
	if treeRSS(nil) != 0 || treeRSS([]int{0}) != 0 || treeRSS([]int{1 << 30}) != 0 {
		t.Error("no roots: RSS not 0")
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), make([]byte, 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d", "c"), make([]byte, 24), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if got := dirSize(dir); got != 1024 {
		t.Errorf("dirSize = %d, want 1024 (hard link once, symlink not followed)", got)
	}
}

// BenchmarkTreeRSS compares the walk through the children files with the
// scan of every process (on this machine as it is) for a small tree.
func BenchmarkTreeRSS(b *testing.B) {
	cmd := exec.Command("sh", "-c", "sleep 60 & wait")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	roots := []int{cmd.Process.Pid}
	b.Run("children", func(b *testing.B) {
		for b.Loop() {
			treeRSS(roots)
		}
	})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			treeRSSScan(roots)
		}
	})
}
