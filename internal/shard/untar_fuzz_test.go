package shard

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var updateSeeds = flag.Bool("update", false, "rewrite the checked-in fuzz seed corpora under testdata/fuzz/")

// FuzzUntarTree feeds untarTree archives (seeds: testdata/fuzz/FuzzUntarTree,
// written by TestUntarSeeds -update) and checks its promise: nothing is
// ever created, changed or followed outside the target directory — also
// through links a tenant planted there beforehand — no link, device, or
// setuid file is ever made, a bad archive (a name escaping the target, an
// absolute name, a link or special entry, a sparse file, a duplicate entry,
// a truncated stream) is an error, and a good one is extracted exactly.
func FuzzUntarTree(f *testing.F) {
	f.Fuzz(func(t *testing.T, archive []byte) {
		checkUntar(t, archive)
	})
}

// untarScene is a target directory inside a parent with files outside
// it, and links into the outside planted inside, as a tenant can.
type untarScene struct {
	parent, target, outside, outDir string
	before                          fileState
}

type fileState struct {
	content  string
	mode     fs.FileMode
	uid, gid uint32
	mtime    time.Time
}

func statOf(t *testing.T, p string) fileState {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatalf("outside file: %v", err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fileState{content: string(b), mode: fi.Mode(), uid: st.Uid, gid: st.Gid, mtime: fi.ModTime()}
}

func newUntarScene(t *testing.T) *untarScene {
	t.Helper()
	parent := t.TempDir()
	s := &untarScene{parent: parent, target: filepath.Join(parent, "target"),
		outside: filepath.Join(parent, "outside.txt"), outDir: filepath.Join(parent, "outdir")}
	for _, d := range []string{s.target, s.outDir, filepath.Join(s.target, "uploads")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.outside, []byte("sentinel outside the target"), 0o600); err != nil {
		t.Fatal(err)
	}
	past := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(s.outside, past, past); err != nil {
		t.Fatal(err)
	}
	// What a site's user could have left in its own tree.
	for link, target := range map[string]string{
		"link":        s.outside,      // absolute symlink out, to a file
		"linkdir":     "../outdir",    // relative symlink out, to a directory
		"uploads/dir": s.outDir,       // absolute symlink out, below uploads
		"uploads/up":  "../../outdir", // relative, two levels up
	} {
		if err := os.Symlink(target, filepath.Join(s.target, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(s.outside, filepath.Join(s.target, "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(s.outside, filepath.Join(s.target, "uploads", "hard")); err != nil {
		t.Fatal(err)
	}
	s.before = statOf(t, s.outside)
	return s
}

// siteUID owns what the archive has below uploads when the test runs as
// root (untarTree's owner function); the rest is root's.
const siteUID = 65534

func fuzzOwner(rel string) (int, int) {
	if os.Geteuid() != 0 {
		return -1, -1
	}
	if rel == "uploads" || strings.HasPrefix(rel, "uploads/") {
		return siteUID, siteUID
	}
	return 0, 0
}

// archiveEntry is what an archive says about one name, read with
// archive/tar independently of untarTree.
type archiveEntry struct {
	name    string
	typ     byte
	content []byte
}

// readArchive lists an archive's entries and reports whether untarTree must
// refuse it: an unreadable stream, an invalid or duplicate name, an entry
// other than a directory or a regular file, a sparse file.
func readArchive(archive []byte) (entries []archiveEntry, bad string) {
	tr := tar.NewReader(bytes.NewReader(archive))
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries, bad
		}
		if err != nil {
			return entries, "stream: " + err.Error()
		}
		name := path.Clean(strings.TrimSuffix(hdr.Name, "/"))
		switch {
		case !fs.ValidPath(name) || name == ".":
			bad = fmt.Sprintf("invalid name %q", hdr.Name)
		case seen[name]:
			bad = fmt.Sprintf("duplicate %q", name)
		case hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeDir:
			bad = fmt.Sprintf("type %q for %q", hdr.Typeflag, name)
		case isSparse(hdr):
			bad = fmt.Sprintf("sparse %q", name)
		}
		seen[name] = true
		if bad != "" {
			// Never read a sparse entry's content: it may expand to any size.
			return entries, bad
		}
		e := archiveEntry{name: name, typ: hdr.Typeflag}
		if hdr.Typeflag == tar.TypeReg {
			if _, ok := hdr.PAXRecords[paxStream]; ok {
				return entries, "content in an external stream"
			}
			if e.content, err = io.ReadAll(tr); err != nil {
				return entries, "content: " + err.Error()
			}
		}
		entries = append(entries, e)
	}
}

func checkUntar(t *testing.T, archive []byte) {
	s := newUntarScene(t)
	err := untarTree(s.target, bytes.NewReader(archive), fuzzOwner)
	entries, bad := readArchive(archive)

	// 1. Nothing outside the target changed.
	ents, rerr := os.ReadDir(s.parent)
	if rerr != nil {
		t.Fatal(rerr)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"outdir", "outside.txt", "target"}) {
		t.Errorf("the target's parent holds %q after extraction (err %v)", names, err)
	}
	if outs, _ := os.ReadDir(s.outDir); len(outs) != 0 {
		t.Errorf("something was created in a directory outside the target: %v (err %v)", outs, err)
	}
	after := statOf(t, s.outside)
	if after != s.before {
		t.Errorf("the file outside the target changed: %+v, was %+v (err %v)", after, s.before, err)
	}

	// 2. Inside, only directories and regular files untarTree made, plus
	// what was planted and left alone; no setuid, no group/other write.
	walkErr := filepath.WalkDir(s.target, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.target, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		planted := slices.Contains([]string{"link", "linkdir", "uploads/dir", "uploads/up", "hard", "uploads/hard", "uploads", "."}, filepath.ToSlash(rel))
		switch {
		case fi.Mode()&fs.ModeSymlink != 0 && !planted:
			t.Errorf("extraction made a symlink %s", rel)
		case fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0:
			t.Errorf("extraction made a special file %s (%v)", rel, fi.Mode())
		case fi.Mode().IsRegular() && st.Nlink != 1 && !planted:
			t.Errorf("extracted file %s has %d names", rel, st.Nlink)
		}
		if !planted && (fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 || fi.Mode().Perm()&0o022 != 0) {
			t.Errorf("extracted %s with mode %v", rel, fi.Mode())
		}
		return nil
	})
	if walkErr != nil {
		t.Fatal(walkErr)
	}

	// 3. A bad archive is an error; a good extraction is exact.
	if bad != "" && err == nil {
		t.Fatalf("untarTree accepted a bad archive (%s)", bad)
	}
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(s.target, filepath.FromSlash(e.name))
		fi, lerr := os.Lstat(p)
		if lerr != nil {
			t.Errorf("entry %s: %v", e.name, lerr)
			continue
		}
		switch e.typ {
		case tar.TypeDir:
			if !fi.IsDir() {
				t.Errorf("entry %s: a directory in the archive, %v on disk", e.name, fi.Mode())
			}
		case tar.TypeReg:
			b, rerr := os.ReadFile(p)
			if !fi.Mode().IsRegular() || rerr != nil || !bytes.Equal(b, e.content) {
				t.Errorf("entry %s: %v on disk, content %d bytes (%v), want %d bytes", e.name, fi.Mode(), len(b), rerr, len(e.content))
			}
		}
		if uid, _ := fuzzOwner(e.name); uid >= 0 && fi.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
			t.Errorf("entry %s: owner %d, want %d", e.name, fi.Sys().(*syscall.Stat_t).Uid, uid)
		}
	}
}

// TestUntarSeeds checks the seed corpus of FuzzUntarTree (go test runs
// the seeds anyway; this names each one) and rewrites it with -update.
func TestUntarSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzUntarTree")
	if *updateSeeds {
		seeds := untarSeeds(t)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
		for _, p := range old {
			os.Remove(p)
		}
		for name, b := range seeds {
			// Without the trailer's zero blocks (archive/tar ends at a
			// header boundary as well), so the corpus stays small — unless
			// that changes what the archive says.
			short := b
			for len(short) >= 2*512 && bytes.Equal(short[len(short)-512:], make([]byte, 512)) {
				short = short[:len(short)-512]
			}
			if tarReadErr(short) == tarReadErr(b) {
				b = short
			}
			if err := os.WriteFile(filepath.Join(dir, "seed-"+name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
	if len(files) < 20 {
		t.Fatalf("%d seeds in %s; run go test -run TestUntarSeeds -update", len(files), dir)
	}
}

// tarReadErr reads a whole archive, content included, and returns how it
// ended ("" for a clean end).
func tarReadErr(b []byte) string {
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		_, err := tr.Next()
		if err == io.EOF {
			return ""
		}
		if err == nil {
			_, err = io.Copy(io.Discard, tr)
		}
		if err != nil {
			return err.Error()
		}
	}
}

// untarSeeds builds the seed archives: real tarTree output, and every kind
// of hostile entry named in the brief.
func untarSeeds(t *testing.T) map[string][]byte {
	t.Helper()
	seeds := map[string][]byte{}
	// A real site's wp-content as tarTree writes it.
	tree := t.TempDir()
	for name, content := range map[string]string{
		"uploads/2024/05/photo.jpg":        "\xff\xd8\xff\xe0 not really a jpeg",
		"uploads/2024/05/notes.txt":        "hello",
		"plugins/hello/hello.php":          "<?php // hello",
		"themes/mine/style.css":            "body{}",
		"mu-plugins/.keep":                 "",
		"uploads/a name with spaces/ü.txt": "unicode",
	} {
		p := filepath.Join(tree, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stamp := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	filepath.WalkDir(tree, func(p string, _ fs.DirEntry, _ error) error { return os.Chtimes(p, stamp, stamp) })
	var buf bytes.Buffer
	if err := tarTree(tree, &buf); err != nil {
		t.Fatal(err)
	}
	seeds["tartree"] = buf.Bytes()

	type ent struct {
		name     string
		typ      byte
		body     string
		link     string
		size     int64 // header size when it differs from the body's
		mode     int64
		pax      map[string]string
		truncate bool
	}
	build := func(es ...ent) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, e := range es {
			h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, ModTime: stamp, PAXRecords: e.pax}
			if e.mode != 0 {
				h.Mode = e.mode
			}
			if e.typ == tar.TypeReg {
				h.Size = int64(len(e.body))
			}
			if e.size != 0 {
				h.Size = e.size
			}
			if e.pax != nil {
				h.Format = tar.FormatPAX
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatalf("seed %s: %v", e.name, err)
			}
			if e.body != "" {
				tw.Write([]byte(e.body))
			}
			if e.truncate {
				return b.Bytes() // the stream ends inside the entry
			}
		}
		tw.Close()
		return b.Bytes()
	}
	dirE := func(n string) ent { return ent{name: n, typ: tar.TypeDir, mode: 0o755} }
	reg := func(n, body string) ent { return ent{name: n, typ: tar.TypeReg, body: body} }
	seeds["zipslip-dotdot"] = build(reg("../evil.txt", "escaped"))
	seeds["zipslip-nested"] = build(dirE("uploads/"), reg("uploads/../../evil.txt", "escaped"))
	seeds["zipslip-deep"] = build(dirE("a/"), reg("a/b/../../../outside.txt", "overwritten"))
	seeds["absolute"] = build(reg("/tmp/aipress-fuzz-absolute", "absolute"))
	seeds["absolute-dir"] = build(dirE("/etc/aipress-fuzz/"))
	seeds["dot"] = build(dirE("./"))
	seeds["empty-name"] = build(reg("", "nameless"))
	seeds["symlink-out"] = build(ent{name: "s", typ: tar.TypeSymlink, link: "/etc/passwd"})
	seeds["symlink-then-write"] = build(ent{name: "s", typ: tar.TypeSymlink, link: ".."}, reg("s/outside.txt", "through the link"))
	seeds["hardlink-out"] = build(ent{name: "h", typ: tar.TypeLink, link: "../outside.txt"})
	seeds["hardlink-abs"] = build(ent{name: "h", typ: tar.TypeLink, link: "/etc/shadow"})
	seeds["chardev"] = build(ent{name: "null", typ: tar.TypeChar, mode: 0o666})
	seeds["blockdev"] = build(ent{name: "sda", typ: tar.TypeBlock, mode: 0o660})
	seeds["fifo"] = build(ent{name: "fifo", typ: tar.TypeFifo, mode: 0o644})
	seeds["setuid"] = build(ent{name: "suid", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o4777})
	seeds["huge-size"] = build(ent{name: "big", typ: tar.TypeReg, body: "short", size: 1 << 40, truncate: true})
	seeds["truncated"] = build(ent{name: "cut", typ: tar.TypeReg, body: "abc", size: 4096, truncate: true})
	seeds["duplicate-file"] = build(reg("a.txt", "first"), reg("a.txt", "second"))
	seeds["duplicate-dir-file"] = build(dirE("x/"), reg("x", "file over dir"))
	seeds["duplicate-file-dir"] = build(reg("x", "file"), dirE("x/"))
	seeds["through-planted-hardlink"] = build(reg("hard", "written through a hard link"))
	seeds["dir-over-planted-hardlink"] = build(dirE("hard/"))
	seeds["uploads-hardlink"] = build(dirE("uploads/"), reg("uploads/hard", "through the uploads hard link"))
	seeds["over-planted-symlink"] = build(reg("link", "replaces the link"))
	seeds["through-planted-dirlink"] = build(reg("linkdir/x", "into outdir"))
	seeds["through-uploads-dirlink"] = build(dirE("uploads/"), reg("uploads/dir/x", "into outdir"), reg("uploads/up/y", "into outdir"))
	seeds["missing-parent"] = build(reg("no/such/dir/file", "orphan"))
	seeds["pax-long-name"] = build(dirE(strings.Repeat("d", 120)+"/"), reg(strings.Repeat("d", 120)+"/"+strings.Repeat("f", 150), "long"))
	seeds["pax-stream"] = build(ent{name: "streamed", typ: tar.TypeReg, pax: map[string]string{paxStream: "wp-content/streamed"}})
	seeds["valid-small"] = build(dirE("uploads/"), dirE("uploads/2025/"), reg("uploads/2025/a.txt", "a"), dirE("themes/"), reg("themes/x.css", "x"))

	// Sparse files (GNU tar writes them; Go's reader expands their holes):
	// a real 1 MiB sparse file, in the PAX and in the old GNU format.
	if _, err := exec.LookPath("tar"); err == nil {
		sp := t.TempDir()
		f, err := os.Create(filepath.Join(sp, "sparse"))
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte("data"), 512<<10)
		f.Truncate(1 << 20)
		f.Close()
		for name, format := range map[string]string{"sparse-pax": "pax", "sparse-gnu": "gnu"} {
			out, err := exec.Command("tar", "--sparse", "--format="+format, "-C", sp, "-cf", "-", "sparse").Output()
			if err != nil {
				t.Fatalf("tar %s: %v", format, err)
			}
			seeds[name] = out
		}
	}
	return seeds
}

// The seeds that must be refused are refused (a named check of the corpus;
// the invariants themselves run in FuzzUntarTree).
func TestUntarRefusesHostileSeeds(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzUntarTree", "seed-*"))
	for _, p := range files {
		name := strings.TrimPrefix(filepath.Base(p), "seed-")
		t.Run(name, func(t *testing.T) {
			archive := readSeed(t, p)
			s := newUntarScene(t)
			err := untarTree(s.target, bytes.NewReader(archive), fuzzOwner)
			// Refused, but for: real archives, a planted link replaced by
			// the archive's entry (never written through), and a setuid
			// mode (dropped: 0755).
			wantOK := slices.Contains([]string{"tartree", "valid-small", "pax-long-name", "setuid",
				"over-planted-symlink", "through-planted-hardlink", "dir-over-planted-hardlink", "uploads-hardlink"}, name)
			if (err == nil) != wantOK {
				t.Errorf("untarTree(%s) = %v, want success %v", name, err, wantOK)
			}
		})
	}
}

// readSeed decodes a corpus file holding one []byte value.
func readSeed(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(b), "\n", 3)
	if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("%s: not a []byte corpus file", p)
	}
	lit := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
	s, err := strconv.Unquote(lit)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return []byte(s)
}
