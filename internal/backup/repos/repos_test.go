package repos

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/aipress/aipress/internal/backup/repo"
)

func TestLoadKEK(t *testing.T) {
	path := filepath.Join(t.TempDir(), KEKFile)
	k1, err := LoadKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != repo.KeySize {
		t.Fatalf("key of %d bytes", len(k1))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1, k2) {
		t.Error("second load returned another key")
	}
	bad := filepath.Join(t.TempDir(), KEKFile)
	if err := os.WriteFile(bad, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKEK(bad); err == nil {
		t.Error("a 5-byte key file was accepted")
	}
	if b, _ := os.ReadFile(bad); string(b) != "short" {
		t.Error("a bad key file was overwritten")
	}
}

func TestRepoURL(t *testing.T) {
	for _, tc := range []struct {
		base, name, want string
		wantErr          bool
	}{
		{"file:///var/lib/aipress/backups", "local", "file:///var/lib/aipress/backups/local", false},
		{"file:///var/lib/aipress/backups/", "shard-2", "file:///var/lib/aipress/backups/shard-2", false},
		{"s3://bucket?region=eu-west-1", "s1", "s3://bucket?prefix=s1%2F&region=eu-west-1", false},
		{"gs://bucket?prefix=aipress", "s1", "gs://bucket?prefix=aipress%2Fs1%2F", false},
		{"gs://bucket?prefix=aipress/", "s1", "gs://bucket?prefix=aipress%2Fs1%2F", false},
		{"file:///x", "../etc", "", true},
		{"file:///x", "", "", true},
		{"/no/scheme", "s1", "", true},
	} {
		got, err := RepoURL(tc.base, tc.name)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("RepoURL(%q, %q) = %q, %v; want %q, error %v", tc.base, tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

func newManager(t *testing.T, base string, kek []byte) *Manager {
	t.Helper()
	m, err := New(Config{BaseURL: base, KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestAccess(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	base := DefaultBaseURL(dir)
	kek, err := LoadKEK(filepath.Join(dir, KEKFile))
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(t, base, kek)

	if _, err := m.Open(ctx, "s1", false); !errors.Is(err, repo.ErrNotInitialized) {
		t.Fatalf("open of a missing repository: err = %v, want ErrNotInitialized", err)
	}
	a, err := m.Access(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if a.URL != base+"/s1" || !bytes.Equal(a.Key, m.AccessKey("s1")) || bytes.Equal(a.Key, kek) {
		t.Fatalf("access = %+v", a)
	}
	if bytes.Equal(m.AccessKey("s1"), m.AccessKey("s2")) {
		t.Error("two repositories share an access key")
	}
	// The shard's side opens the same repository with the access key.
	r, err := OpenAccess(ctx, a, nil)
	if err != nil {
		t.Fatalf("open with the access key: %v", err)
	}
	mine, err := m.Open(ctx, "s1", false)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID() != mine.ID() || r.ID() == "" {
		t.Errorf("ids %q and %q", r.ID(), mine.ID())
	}
	r.Close()
	// Another repository's access key does not open it.
	if _, err := OpenAccess(ctx, Access{Name: "s1", URL: a.URL, Key: m.AccessKey("s2")}, nil); !errors.Is(err, repo.ErrWrongKey) {
		t.Errorf("open with s2's key: err = %v, want ErrWrongKey", err)
	}

	keys := func() int {
		entries, err := os.ReadDir(filepath.Join(dir, "backups", "s1", "keys"))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range entries {
			if filepath.Ext(e.Name()) != ".attrs" { // the file driver's metadata
				n++
			}
		}
		return n
	}
	if n := keys(); n != 2 {
		t.Errorf("%d key files, want 2 (KEK and access key)", n)
	}
	// A restarted control plane (a new Manager) adds no key again.
	m2 := newManager(t, base, kek)
	if _, err := m2.Access(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if n := keys(); n != 2 {
		t.Errorf("%d key files after a restart, want 2", n)
	}
	// Another KEK opens nothing.
	other := bytes.Repeat([]byte{7}, repo.KeySize)
	if _, err := newManager(t, base, other).Open(ctx, "s1", false); !errors.Is(err, repo.ErrWrongKey) {
		t.Errorf("open with another KEK: err = %v, want ErrWrongKey", err)
	}
}

func TestMoveKey(t *testing.T) {
	kek := bytes.Repeat([]byte{1}, repo.KeySize)
	m, err := New(Config{BaseURL: "file:///tmp/x", KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	k := m.MoveKey("uid-1", "move-1")
	if len(k) != 32 || !bytes.Equal(k, MoveKey(kek, "uid-1", "move-1")) {
		t.Fatalf("MoveKey = %x", k)
	}
	// Every other move, site or key derives another key; so does a split
	// of the same characters between site and move, and a repository's
	// access key of the same text.
	for _, other := range [][]byte{
		MoveKey(kek, "uid-1", "move-2"),
		MoveKey(kek, "uid-2", "move-1"),
		MoveKey(kek, "uid-1m", "ove-1"),
		MoveKey(kek, "uid-1:", "move-1"),
		MoveKey(bytes.Repeat([]byte{2}, repo.KeySize), "uid-1", "move-1"),
		m.AccessKey("move:5:uid-1:move-1"),
	} {
		if bytes.Equal(k, other) {
			t.Errorf("key %x derived twice", k)
		}
	}
}
