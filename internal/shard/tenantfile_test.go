package shard

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// What the shard reads as root for a site (move exports, backups) leaves
// out files of its uploads with more than one name or another owner than
// the site's user: a hard link to a root-only file would otherwise come
// back to the site, through a restore or a move, as a copy it can read.
func TestTarLeavesOutForeignUploads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: files of other owners")
	}
	dir := t.TempDir()
	content := filepath.Join(dir, "wp-content")
	uploads := filepath.Join(content, "uploads")
	if err := os.MkdirAll(uploads, 0o755); err != nil {
		t.Fatal(err)
	}
	const site = 65534
	secret := filepath.Join(dir, "secret")
	write := func(p, data string, uid int) {
		t.Helper()
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(uploads, site, site); err != nil {
		t.Fatal(err)
	}
	write(secret, "ROOT ONLY", 0)
	write(filepath.Join(uploads, "photo.txt"), "the site's own", site)
	write(filepath.Join(uploads, "root-owned.txt"), "root's", 0)
	write(filepath.Join(uploads, "other-owner.txt"), "another uid's", 1000)
	write(filepath.Join(content, "theme.css"), "root's file outside uploads", 0)
	if err := os.Link(secret, filepath.Join(uploads, "hardlink.txt")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarTreeWith(content, &buf, nil); err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(tr); bytes.Contains(b, []byte("ROOT ONLY")) {
			t.Errorf("%s carries the root-only file", h.Name)
		}
		if h.Typeflag == tar.TypeReg {
			names = append(names, h.Name)
		}
	}
	slices.Sort(names)
	if want := []string{"theme.css", "uploads/photo.txt"}; !slices.Equal(names, want) {
		t.Errorf("archived %v, want %v", names, want)
	}
}
