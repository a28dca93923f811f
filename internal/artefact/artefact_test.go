package artefact_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/artefact/catalogtest"
	"github.com/aipress/aipress/internal/egress"
	"github.com/aipress/aipress/internal/site"
)

// uploads is an in-memory upload source.
type uploads struct {
	mu    sync.Mutex
	m     map[string][]byte
	opens int
}

func (u *uploads) add(b []byte) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	sha := catalogtest.SHA256(b)
	u.m[sha] = b
	return sha
}

func (u *uploads) open(_ context.Context, sha string) (io.ReadCloser, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	b, ok := u.m[sha]
	if !ok {
		return nil, fs.ErrNotExist
	}
	u.opens++
	return io.NopCloser(bytes.NewReader(b)), nil
}

func newStore(t *testing.T, cat *catalogtest.Server, lim artefact.Limits) (*artefact.Store, *uploads) {
	t.Helper()
	up := &uploads{m: map[string][]byte{}}
	cfg := artefact.Config{Dir: filepath.Join(t.TempDir(), "artefacts"), Uploads: up.open, Limits: lim, AllowPrivateNetworks: true}
	if cat != nil {
		cfg.Catalogue = cat.Catalogue()
	}
	s, err := artefact.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, up
}

// testOrg is the organisation the tests' uploads are for.
const testOrg = "acme"

func uploadRef(kind artefact.Kind, name, sha string) artefact.Ref {
	return artefact.Ref{Kind: kind, Name: name, Org: testOrg, Source: site.ExtensionSource{Type: site.SourceUpload, SHA256: sha}}
}

// assertNothingLeft checks that a refused archive left no artefact and no
// temporary file behind.
func assertNothingLeft(t *testing.T, root string) {
	t.Helper()
	for _, d := range []string{"plugin", "theme", "core", ".tmp"} {
		ents, err := os.ReadDir(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			// An empty digest folder is harmless, but none should hold
			// a marker or files.
			sub, _ := os.ReadDir(filepath.Join(root, d, e.Name()))
			if len(sub) > 0 || d == ".tmp" {
				t.Errorf("left behind: %s/%s (%d entries)", d, e.Name(), len(sub))
			}
		}
	}
}

func hello(v string) map[string]string { return catalogtest.PluginFiles(catalogtest.HelloPlugin, v) }

// noise returns n bytes that do not compress.
func noise(n int) string {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return string(b)
}

var pluginPHP = "<?php\n/* Plugin Name: P\n * Version: 1.0 */\n"

func TestRefusals(t *testing.T) {
	type E = catalogtest.Entry
	big := strings.Repeat("x", 4096)
	tests := []struct {
		name  string
		kind  artefact.Kind
		slug  string
		zip   []byte
		lim   artefact.Limits
		entry string // the entry the refusal must name
		want  string
	}{
		{"zip-slip fixture", artefact.Plugin, catalogtest.SlipPlugin, catalogtest.HostileZip(catalogtest.SlipPlugin), artefact.Limits{}, "aipress-slip/../../aipress-slip.php", "leaves the archive"},
		{"symlink fixture", artefact.Plugin, catalogtest.SymlinkPlugin, catalogtest.HostileZip(catalogtest.SymlinkPlugin), artefact.Limits{}, "aipress-symlink/passwd", "symbolic link"},
		{"PHP outside fixture", artefact.Plugin, catalogtest.OutsidePlugin, catalogtest.HostileZip(catalogtest.OutsidePlugin), artefact.Limits{}, "aipress-outside.php", "PHP outside the root folder"},
		{"PHP outside in another folder", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "q/x.php", Body: "<?php"}), artefact.Limits{}, "q/x.php", "PHP outside the root folder"},
		{"second root folder", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "__MACOSX/p/._p.php", Body: "x"}), artefact.Limits{}, "__MACOSX/p/._p.php", "outside the root folder"},
		{"file beside the root folder", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "README", Body: "x"}), artefact.Limits{}, "README", "outside the root folder"},
		{"root folder is not the slug", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "other/p.php", Body: pluginPHP}), artefact.Limits{}, "other/", `not "p"`},
		{"absolute name", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "/etc/cron.d/x", Body: "x"}), artefact.Limits{}, "/etc/cron.d/x", "absolute"},
		{"dot-dot in the middle", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/a/../../x.php", Body: "x"}), artefact.Limits{}, "p/a/../../x.php", "leaves the archive"},
		{"backslash", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: `p\..\..\x.php`, Body: "x"}), artefact.Limits{}, `p\..\..\x.php`, "backslash"},
		{"NUL", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/x.php\x00.txt", Body: "x"}), artefact.Limits{}, "p/x.php\x00.txt", "NUL"},
		{"duplicate", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/p.php", Body: "<?php evil();"}), artefact.Limits{}, "p/p.php", "listed twice"},
		{"case-folding duplicate", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/P.php", Body: "x"}), artefact.Limits{}, "p/P.php", "case"},
		{"case-folding duplicate folder", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/inc/a.php", Body: "x"}, E{Name: "p/INC/b.php", Body: "x"}), artefact.Limits{}, "p/INC/b.php", "case"},
		{"file and folder", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/x/y", Body: "x"}, E{Name: "p/x", Body: "x"}), artefact.Limits{}, "p/x", "both a file and a folder"},
		{"named pipe", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/fifo", Mode: fs.ModeNamedPipe | 0o644}), artefact.Limits{}, "p/fifo", "special file"},
		{"device", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/sda", Mode: fs.ModeDevice | 0o644}), artefact.Limits{}, "p/sda", "special file"},
		{"folder symlink", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/root", Body: "/", Mode: fs.ModeSymlink | 0o777}), artefact.Limits{}, "p/root", "symbolic link"},
		{"too many files", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/a", Body: "a"}, E{Name: "p/b", Body: "b"}), artefact.Limits{MaxFiles: 2}, "", "entries, more than the limit of 2"},
		{"unpacked size declared", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/a", Body: big}, E{Name: "p/b", Body: big}), artefact.Limits{MaxUnpackedBytes: 6000}, "", "unpacked bytes"},
		{"one entry over the unpacked size", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/a", Body: big + big}), artefact.Limits{MaxUnpackedBytes: 6000}, "p/a", "declares 8192 bytes"},
		{"actual size above the declared", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/a", Body: big, Size: 10}), artefact.Limits{}, "p/a", ""},
		{"archive too big", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: pluginPHP}, E{Name: "p/a", Body: noise(4096)}), artefact.Limits{MaxArchiveBytes: 1000}, "", "more than the limit of 1000 bytes"},
		{"not a zip", artefact.Plugin, "p", []byte("<?php echo 'hi';"), artefact.Limits{}, "", "not a zip"},
		{"empty", artefact.Plugin, "p", catalogtest.ZipOf(), artefact.Limits{}, "", "empty"},
		{"no plugin header", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/p.php", Body: "<?php echo 1;"}), artefact.Limits{}, "p/", "Plugin Name"},
		{"plugin header only in a subfolder", artefact.Plugin, "p", catalogtest.ZipOf(E{Name: "p/inc/p.php", Body: pluginPHP}), artefact.Limits{}, "p/", "Plugin Name"},
		{"theme without style.css", artefact.Theme, "t", catalogtest.ZipOf(E{Name: "t/index.php", Body: "<?php"}), artefact.Limits{}, "t/style.css", "Theme Name"},
		{"core without version.php", artefact.Core, "wordpress", catalogtest.ZipOf(E{Name: "wordpress/index.php", Body: "<?php"}), artefact.Limits{}, "wordpress/wp-includes/version.php", "missing"},
		{"core in another folder", artefact.Core, "wordpress", catalogtest.Zip("wp", map[string]string{"wp-includes/version.php": "<?php\n$wp_version = '6.1';\n"}), artefact.Limits{}, "wp/", `not "wordpress"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, up := newStore(t, nil, tt.lim)
			sha := up.add(tt.zip)
			_, err := s.Ensure(context.Background(), uploadRef(tt.kind, tt.slug, sha))
			if !errors.Is(err, artefact.ErrRefused) {
				t.Fatalf("Ensure: %v, want ErrRefused", err)
			}
			if tt.entry != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.entry)) {
				t.Errorf("error %q does not name the entry %q", err, tt.entry)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			assertNothingLeft(t, s.Root())
			if _, err := os.Stat("/" + tt.slug + ".php"); err == nil && tt.slug != "p" {
				t.Errorf("an entry escaped to /%s.php", tt.slug)
			}
		})
	}
}

func TestZipSourceDigest(t *testing.T) {
	cat := catalogtest.New(t)
	z := catalogtest.Zip("p", map[string]string{"p.php": pluginPHP})
	url := cat.AddRaw("/files/p.zip", z)
	s, _ := newStore(t, cat, artefact.Limits{})
	ctx := context.Background()
	ref := artefact.Ref{Kind: artefact.Plugin, Name: "p", Source: site.ExtensionSource{Type: site.SourceZip, URL: url, SHA256: strings.Repeat("0", 64)}}
	_, err := s.Ensure(ctx, ref)
	if !errors.Is(err, artefact.ErrRefused) || !strings.Contains(err.Error(), "SHA-256 mismatch") {
		t.Fatalf("wrong sha256: %v, want a refused mismatch", err)
	}
	assertNothingLeft(t, s.Root())
	ref.Source.SHA256 = catalogtest.SHA256(z)
	a, err := s.Ensure(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != ref.Source.SHA256 || a.Version != "1.0" || a.Main != "p.php" {
		t.Errorf("artefact %+v", a)
	}
	// Known digest: no more download.
	n := cat.Count("/files/")
	if _, err := s.Ensure(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if cat.Count("/files/") != n {
		t.Errorf("a second Ensure downloaded again")
	}
	// The same archive under another name is refused.
	ref.Name = "q"
	if _, err := s.Ensure(ctx, ref); !errors.Is(err, artefact.ErrRefused) {
		t.Errorf("same digest, other name: %v, want refused", err)
	}
	for _, u := range []string{"ftp://127.0.0.1/p.zip", "file:///etc/passwd", "https://user:pw@example.com/p.zip"} {
		ref := artefact.Ref{Kind: artefact.Plugin, Name: "p2", Source: site.ExtensionSource{Type: site.SourceZip, URL: u, SHA256: strings.Repeat("1", 64)}}
		if _, err := s.Ensure(ctx, ref); err == nil {
			t.Errorf("URL %s accepted", u)
		}
	}
}

// TestPrivateNetworksRefused: without AllowPrivateNetworks no fetch
// reaches a loopback or private address — not a zip or git URL naming
// one, not plain http, not a catalogue's download link that leads there
// (checked when dialled).
func TestPrivateNetworksRefused(t *testing.T) {
	cat := catalogtest.New(t)
	cat.AddPlugin(catalogtest.HelloPlugin, "1.0", hello("1.0"))
	z := catalogtest.Zip("p", map[string]string{"p.php": pluginPHP})
	zipURL := cat.AddRaw("/files/p.zip", z)
	s, err := artefact.Open(artefact.Config{Dir: filepath.Join(t.TempDir(), "artefacts"), Catalogue: cat.Catalogue()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sha := catalogtest.SHA256(z)
	for _, u := range []string{zipURL, strings.Replace(zipURL, "http:", "https:", 1),
		strings.Replace(strings.Replace(zipURL, "http:", "https:", 1), "127.0.0.1", "localhost", 1),
		"https://169.254.169.254/latest/p.zip", "https://10.0.0.1/p.zip", "http://example.com/p.zip"} {
		ref := artefact.Ref{Kind: artefact.Plugin, Name: "p", Source: site.ExtensionSource{Type: site.SourceZip, URL: u, SHA256: sha}}
		if _, err := s.Ensure(ctx, ref); err == nil {
			t.Errorf("zip URL %s fetched", u)
		}
		git := artefact.Ref{Kind: artefact.Plugin, Name: "p", Source: site.ExtensionSource{Type: site.SourceGit, URL: u, Ref: "main"}}
		if _, err := s.Ensure(ctx, git); err == nil {
			t.Errorf("git URL %s fetched", u)
		}
	}
	// The catalogue's API answers (its own client), but its download
	// link is on loopback: the store's guarded client does not dial it.
	if _, err := s.Ensure(ctx, artefact.Ref{Kind: artefact.Plugin, Name: catalogtest.HelloPlugin, Version: "1.0", Source: site.ExtensionSource{Type: site.SourceWordPressOrg}}); !errors.Is(err, egress.ErrForbidden) {
		t.Errorf("catalogue download from loopback: %v, want ErrForbidden", err)
	}
	if n := cat.Count("/files/") + cat.Count("/plugin/"); n != 0 {
		t.Errorf("%d downloads reached the loopback server", n)
	}
}

func TestUploadSource(t *testing.T) {
	s, up := newStore(t, nil, artefact.Limits{})
	ctx := context.Background()
	if _, err := s.Ensure(ctx, uploadRef(artefact.Plugin, "p", strings.Repeat("a", 64))); !errors.Is(err, artefact.ErrNotFound) {
		t.Errorf("missing upload: %v, want ErrNotFound", err)
	}
	// An upload source whose bytes do not match their name.
	z := catalogtest.Zip("p", map[string]string{"p.php": pluginPHP})
	up.m[strings.Repeat("b", 64)] = z
	if _, err := s.Ensure(ctx, uploadRef(artefact.Plugin, "p", strings.Repeat("b", 64))); !errors.Is(err, artefact.ErrRefused) {
		t.Errorf("mismatching upload: %v, want refused", err)
	}
	a, err := s.Ensure(ctx, uploadRef(artefact.Plugin, "p", up.add(z)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "p" || a.Version != "1.0" {
		t.Errorf("artefact %+v", a)
	}
}

func TestCatalogueEnsure(t *testing.T) {
	cat := catalogtest.New(t)
	cat.AddFixtures()
	s, _ := newStore(t, cat, artefact.Limits{})
	ctx := context.Background()
	ref := func(kind artefact.Kind, name, version string) artefact.Ref {
		return artefact.Ref{Kind: kind, Name: name, Version: version}
	}

	latest, err := s.Ensure(ctx, ref(artefact.Plugin, catalogtest.HelloPlugin, ""))
	if err != nil {
		t.Fatal(err)
	}
	if latest.Version != "2.0" || latest.Main != "aipress-hello.php" {
		t.Errorf("latest hello: %+v", latest)
	}
	b, err := os.ReadFile(filepath.Join(latest.Dir, latest.Main))
	if err != nil || !bytes.Contains(b, []byte(catalogtest.Marker(catalogtest.HelloPlugin, "2.0"))) {
		t.Errorf("main file: %v %q", err, b)
	}
	want := filepath.Join(s.Root(), "plugin", latest.Digest, catalogtest.HelloPlugin)
	if latest.Dir != want {
		t.Errorf("Dir %s, want %s", latest.Dir, want)
	}
	v1, err := s.Ensure(ctx, ref(artefact.Plugin, catalogtest.HelloPlugin, "1.0"))
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != "1.0" || v1.Digest == latest.Digest {
		t.Errorf("hello 1.0: %+v", v1)
	}
	// An explicit version the store holds needs no catalogue at all.
	n := len(cat.Requests())
	again, err := s.Ensure(ctx, ref(artefact.Plugin, catalogtest.HelloPlugin, "1.0"))
	if err != nil || again.Dir != v1.Dir {
		t.Fatalf("again: %v %+v", err, again)
	}
	if len(cat.Requests()) != n {
		t.Errorf("an explicit version in the store asked the catalogue: %v", cat.Requests()[n:])
	}
	// "latest" asks the catalogue but downloads nothing more.
	dl := cat.Count("/plugin/")
	if _, err := s.Ensure(ctx, ref(artefact.Plugin, catalogtest.HelloPlugin, "latest")); err != nil {
		t.Fatal(err)
	}
	if cat.Count("/plugin/") != dl {
		t.Errorf("latest downloaded again")
	}

	th, err := s.Ensure(ctx, ref(artefact.Theme, catalogtest.TestTheme, "1.0"))
	if err != nil {
		t.Fatal(err)
	}
	if th.Version != "1.0" || th.Main != "" {
		t.Errorf("theme 1.0 (an older version, beside the newest's link): %+v", th)
	}

	for _, r := range []artefact.Ref{ref(artefact.Plugin, "no-such-plugin", ""), ref(artefact.Plugin, catalogtest.HelloPlugin, "9.9"),
		ref(artefact.Theme, "no-such-theme", ""), ref(artefact.Core, "wordpress", "")} {
		if _, err := s.Ensure(ctx, r); !errors.Is(err, artefact.ErrNotFound) {
			t.Errorf("%+v: %v, want ErrNotFound", r, err)
		}
	}
	for _, h := range []string{catalogtest.SlipPlugin, catalogtest.SymlinkPlugin, catalogtest.OutsidePlugin} {
		if _, err := s.Ensure(ctx, ref(artefact.Plugin, h, "1.0")); !errors.Is(err, artefact.ErrRefused) {
			t.Errorf("%s: %v, want refused", h, err)
		}
	}
	for _, r := range []artefact.Ref{ref(artefact.Plugin, "../x", ""), ref(artefact.Core, "wp", "6.1"), ref("module", "x", ""), ref(artefact.Plugin, "p", "1 0")} {
		if _, err := s.Ensure(ctx, r); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	if _, err := s.Ensure(ctx, artefact.Ref{Kind: artefact.Theme, Name: "twentytwentythree", Source: site.ExtensionSource{Type: site.SourceBundled}}); err == nil {
		t.Error("a bundled source was accepted")
	}
}

// TestPermissions: everything unpacked is root's (when run as root), files
// 0644 and folders 0755, no links.
func TestPermissions(t *testing.T) {
	cat := catalogtest.New(t)
	cat.AddPlugin("deep", "1.0", map[string]string{"deep.php": pluginPHP, "a/b/c/d.txt": "d", "a/x.js": "x"})
	s, _ := newStore(t, cat, artefact.Limits{})
	a, err := s.Ensure(context.Background(), artefact.Ref{Kind: artefact.Plugin, Name: "deep"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Files != 3 {
		t.Errorf("Files %d, want 3", a.Files)
	}
	seen := 0
	err = filepath.WalkDir(filepath.Dir(a.Dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		seen++
		want := fs.FileMode(0o644)
		if fi.IsDir() {
			want = fs.ModeDir | 0o755
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %s, want %s", p, fi.Mode(), want)
		}
		if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (st.Uid != 0 || st.Gid != 0) {
			t.Errorf("%s: owned by %d:%d", p, st.Uid, st.Gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// digest folder, .complete, deep/, deep.php, a/, a/x.js, a/b, a/b/c, d.txt
	if seen != 9 {
		t.Errorf("walked %d entries, want 9", seen)
	}
	got, err := s.Get(artefact.Plugin, "", a.Digest)
	if err != nil || *got != *a {
		t.Errorf("Get: %v %+v, want %+v", err, got, a)
	}
	if _, err := s.Get(artefact.Plugin, "", strings.Repeat("0", 64)); !errors.Is(err, artefact.ErrNotFound) {
		t.Errorf("Get of a missing digest: %v", err)
	}
}

// TestConcurrentEnsure: many Ensures of one artefact at once download and
// unpack it once.
func TestConcurrentEnsure(t *testing.T) {
	cat := catalogtest.New(t)
	cat.AddPlugin(catalogtest.HelloPlugin, "1.0", hello("1.0"))
	s, up := newStore(t, cat, artefact.Limits{})
	sha := up.add(catalogtest.Zip(catalogtest.HelloPlugin, hello("3.0")))
	const n = 12
	var wg sync.WaitGroup
	dirs := make([]string, 2*n)
	errs := make([]error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			a, err := s.Ensure(context.Background(), artefact.Ref{Kind: artefact.Plugin, Name: catalogtest.HelloPlugin, Version: "1.0"})
			if err == nil {
				dirs[i] = a.Dir
			}
			errs[i] = err
		}()
		go func() {
			defer wg.Done()
			a, err := s.Ensure(context.Background(), uploadRef(artefact.Plugin, catalogtest.HelloPlugin, sha))
			if err == nil {
				dirs[n+i] = a.Dir
			}
			errs[n+i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Ensure %d: %v", i, err)
		}
		if base := dirs[i/n*n]; dirs[i] != base {
			t.Errorf("Ensure %d: %s, want %s", i, dirs[i], base)
		}
	}
	if got := cat.Count("/plugin/"); got != 1 {
		t.Errorf("%d downloads, want 1", got)
	}
	if up.opens != 1 {
		t.Errorf("%d upload fetches, want 1", up.opens)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root(), "plugin"))
	if len(ents) != 2 {
		t.Errorf("%d digests in the store, want 2", len(ents))
	}
}

// TestCrashLeftovers: a digest folder without its marker (a crash while
// unpacking) is removed and redone; a half download is removed on Open.
func TestCrashLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "artefacts")
	cat := catalogtest.New(t)
	s, err := artefact.Open(artefact.Config{Dir: dir, AllowPrivateNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	z := catalogtest.Zip(catalogtest.HelloPlugin, hello("1.0"))
	sha := catalogtest.SHA256(z)
	ref := artefact.Ref{Kind: artefact.Plugin, Name: catalogtest.HelloPlugin,
		Source: site.ExtensionSource{Type: site.SourceZip, URL: cat.AddRaw("/files/hello.zip", z), SHA256: sha}}
	partial := filepath.Join(dir, "plugin", sha, catalogtest.HelloPlugin)
	if err := os.MkdirAll(partial, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(partial, "evil.php"), []byte("<?php"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "plugin", sha, ".tmp-0123"), 0o700); err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(dir, ".tmp", "dl-123")
	if err := os.WriteFile(half, []byte("PK"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(artefact.Plugin, "", sha); !errors.Is(err, artefact.ErrNotFound) {
		t.Fatalf("Get of an incomplete digest: %v, want ErrNotFound", err)
	}
	a, err := s.Ensure(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if a.Dir != partial {
		t.Fatalf("unpacked into %s, want %s", a.Dir, partial)
	}
	if _, err := os.Stat(filepath.Join(a.Dir, "evil.php")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the leftover's file survived: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(a.Dir))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != ".complete "+catalogtest.HelloPlugin {
		t.Errorf("digest folder holds %v", names)
	}
	if _, err := artefact.Open(artefact.Config{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(half); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open left the half download: %v", err)
	}
}

func TestCatalogueClient(t *testing.T) {
	cat := catalogtest.New(t)
	cat.AddFixtures()
	cat.AddCoreZip("6.2.1", catalogtest.Zip("wordpress", map[string]string{"wp-includes/version.php": "<?php\n$wp_version = '6.2.1';\n"}))
	cat.AddCoreZip("6.10", catalogtest.Zip("wordpress", map[string]string{"wp-includes/version.php": "<?php\n$wp_version = '6.10';\n"}))
	c := cat.Catalogue()
	ctx := context.Background()
	tests := []struct {
		kind          artefact.Kind
		name, version string
		wantVersion   string
		wantURL       string
	}{
		{artefact.Plugin, catalogtest.HelloPlugin, "", "2.0", cat.PluginURL(catalogtest.HelloPlugin, "2.0")},
		{artefact.Plugin, catalogtest.HelloPlugin, "1.0", "1.0", cat.PluginURL(catalogtest.HelloPlugin, "1.0")},
		{artefact.Theme, catalogtest.TestTheme, "latest", "2.0", cat.ThemeURL(catalogtest.TestTheme, "2.0")},
		{artefact.Theme, catalogtest.TestTheme, "1.0", "1.0", cat.ThemeURL(catalogtest.TestTheme, "1.0")},
		{artefact.Core, "wordpress", "", "6.10", cat.CoreURL("6.10")},
		{artefact.Core, "wordpress", "6.2.1", "6.2.1", cat.CoreURL("6.2.1")},
		// Not offered: the release archive on the downloads host.
		{artefact.Core, "wordpress", "5.9", "5.9", cat.CoreURL("5.9")},
	}
	for _, tt := range tests {
		info, err := c.Info(ctx, tt.kind, tt.name, tt.version)
		if err != nil {
			t.Errorf("%s %s %q: %v", tt.kind, tt.name, tt.version, err)
			continue
		}
		if info.Version != tt.wantVersion || info.DownloadURL != tt.wantURL {
			t.Errorf("%s %s %q: %+v, want %s at %s", tt.kind, tt.name, tt.version, info, tt.wantVersion, tt.wantURL)
		}
	}
	if _, err := c.Plugin(ctx, "nope", ""); !errors.Is(err, artefact.ErrNotFound) || !strings.Contains(err.Error(), "Plugin not found.") {
		t.Errorf("unknown plugin: %v", err)
	}
	if _, err := c.Plugin(ctx, catalogtest.HelloPlugin, "3.0"); !errors.Is(err, artefact.ErrNotFound) || !strings.Contains(err.Error(), "1.0, 2.0") {
		t.Errorf("unknown version: %v", err)
	}
	wantReq := "GET /plugins/info/1.2/?action=plugin_information&request%5Bslug%5D=nope"
	found := false
	for _, r := range cat.Requests() {
		found = found || r == wantReq
	}
	if !found {
		t.Errorf("requests %v lack %q", cat.Requests(), wantReq)
	}
}

func TestCoreFromCatalogue(t *testing.T) {
	const tree = "/usr/share/wordpress"
	if _, err := os.Stat(tree + "/wp-includes/version.php"); err != nil {
		t.Skip("no Debian WordPress core:", err)
	}
	cat := catalogtest.New(t)
	cat.AddCore("6.2.0", tree)
	s, _ := newStore(t, cat, artefact.Limits{})
	a, err := s.Ensure(context.Background(), artefact.Ref{Kind: artefact.Core, Name: "wordpress", Version: "6.2.0"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != "6.2.0" || filepath.Base(a.Dir) != "wordpress" || a.Files < 1000 {
		t.Errorf("core: %+v", a)
	}
	for _, f := range []string{"wp-login.php", "wp-includes/ID3/getid3.php", "wp-content/themes/twentytwentythree/style.css"} {
		fi, err := os.Lstat(filepath.Join(a.Dir, f))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: %v %v", f, err, fi)
		}
	}
}

// TestZipSourceDoesNotReuseUpload: naming the SHA-256 of an archive the
// store holds from an upload in a zip source does not give that archive:
// the URL must serve it.
func TestZipSourceDoesNotReuseUpload(t *testing.T) {
	cat := catalogtest.New(t)
	s, up := newStore(t, cat, artefact.Limits{})
	ctx := context.Background()
	z := catalogtest.Zip("p", map[string]string{"p.php": pluginPHP})
	sha := up.add(z)
	if _, err := s.Ensure(ctx, uploadRef(artefact.Plugin, "p", sha)); err != nil {
		t.Fatal(err)
	}
	other := cat.AddRaw("/files/other.zip", catalogtest.Zip("p", map[string]string{"p.php": pluginPHP + "// other\n"}))
	for _, u := range []string{cat.URL() + "/files/missing.zip", other} {
		ref := artefact.Ref{Kind: artefact.Plugin, Name: "p", Source: site.ExtensionSource{Type: site.SourceZip, URL: u, SHA256: sha}}
		if a, err := s.Ensure(ctx, ref); err == nil {
			t.Errorf("zip source %s naming an upload's SHA-256 got the upload: %s", u, a.Dir)
		}
	}
	// A URL that does serve those bytes gets them (one download, then
	// remembered).
	good := cat.AddRaw("/files/p.zip", z)
	ref := artefact.Ref{Kind: artefact.Plugin, Name: "p", Source: site.ExtensionSource{Type: site.SourceZip, URL: good, SHA256: sha}}
	for range 2 {
		if _, err := s.Ensure(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	if n := cat.Count("/files/p.zip"); n != 1 {
		t.Errorf("%d downloads of the zip, want 1", n)
	}
}

// TestUploadsPerOrganisation: an upload is unpacked for its organisation
// under a folder no one can derive from its SHA-256 (the store's secret
// survives a reopen), each organisation's copy is its own, and the root
// and kind folders can be traversed, not listed.
func TestUploadsPerOrganisation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "artefacts")
	up := &uploads{m: map[string][]byte{}}
	open := func() *artefact.Store {
		s, err := artefact.Open(artefact.Config{Dir: dir, Uploads: up.open})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	ctx := context.Background()
	for _, d := range []string{"", "plugin", "theme", "core"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil || fi.Mode().Perm() != 0o711 {
			t.Errorf("%s/%s: %v %v, want mode 0711", dir, d, err, fi.Mode())
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, ".secret")); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Errorf(".secret: %v %+v, want 32 bytes 0600", err, fi)
	}
	sha := up.add(catalogtest.Zip(catalogtest.HelloPlugin, hello("1.0")))
	ref := uploadRef(artefact.Plugin, catalogtest.HelloPlugin, sha)
	a, err := s.Ensure(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != sha || a.Org != testOrg {
		t.Errorf("digest %s org %q, want %s %q", a.Digest, a.Org, sha, testOrg)
	}
	if strings.Contains(a.Dir, sha) {
		t.Errorf("the upload is at %s, named by its SHA-256", a.Dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "plugin", sha)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("plugin/<sha256> exists: %v", err)
	}
	if got, err := s.At(a.Dir); err != nil || got.Digest != sha || got.Org != testOrg {
		t.Errorf("At(%s): %+v %v", a.Dir, got, err)
	}
	if _, err := s.Get(artefact.Plugin, "", sha); !errors.Is(err, artefact.ErrNotFound) {
		t.Errorf("Get without the organisation: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(artefact.Plugin, "other", sha); !errors.Is(err, artefact.ErrNotFound) {
		t.Errorf("Get as another organisation: %v, want ErrNotFound", err)
	}
	noOrg := ref
	noOrg.Org = ""
	if _, err := s.Ensure(ctx, noOrg); err == nil {
		t.Error("an upload source without an organisation was accepted")
	}
	// Another organisation's copy is another folder.
	other := ref
	other.Org = "other"
	b, err := s.Ensure(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if b.Dir == a.Dir || b.Org != "other" {
		t.Errorf("organisation other got %s (%q), acme %s", b.Dir, b.Org, a.Dir)
	}
	// Reopened, the store finds the upload where it was (one fetch).
	s = open()
	again, err := s.Ensure(ctx, ref)
	if err != nil || again.Dir != a.Dir {
		t.Errorf("after reopening: %v %v, want %s", again, err, a.Dir)
	}
	if up.opens != 2 {
		t.Errorf("%d upload fetches, want 2 (one per organisation)", up.opens)
	}
}
