package catalogtest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Entry is one entry of a hand-built zip (ZipOf). Mode 0 is a regular
// 0644 file (0755 folder when Name ends in "/"); fs.ModeSymlink|0777 with
// Body the link's target makes a symbolic link; fs.ModeNamedPipe,
// fs.ModeDevice … special files. Method is zip.Deflate unless set.
type Entry struct {
	Name   string
	Body   string
	Mode   fs.FileMode
	Method uint16
	// Size, when set, is the uncompressed size the entry declares
	// (a lie, for tests of the unpacking's checks; Method must be
	// zip.Store).
	Size uint64
}

// zipTime is the modification time of every entry: the same files give
// the same zip, and so the same SHA-256.
var zipTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ZipOf builds a zip of entries, in order, exactly as given (names are not
// checked: hostile archives are the point).
func ZipOf(entries ...Entry) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.Name, Method: e.Method, Modified: zipTime}
		if h.Method == 0 && !strings.HasSuffix(e.Name, "/") && e.Size == 0 {
			h.Method = zip.Deflate
		}
		mode := e.Mode
		switch {
		case mode == 0 && strings.HasSuffix(e.Name, "/"):
			mode = fs.ModeDir | 0o755
		case mode == 0:
			mode = 0o644
		}
		h.SetMode(mode)
		if e.Size != 0 {
			// A raw entry whose header lies about its size.
			h.Method = zip.Store
			h.UncompressedSize64 = e.Size
			h.CompressedSize64 = uint64(len(e.Body))
			h.CRC32 = 0
			w, err := zw.CreateRaw(h)
			if err != nil {
				panic(err)
			}
			_, _ = w.Write([]byte(e.Body))
			continue
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			panic(fmt.Sprintf("catalogtest: zip entry %q: %v", e.Name, err))
		}
		_, _ = w.Write([]byte(e.Body))
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Zip builds the zip of a plugin or theme the way wordpress.org does:
// everything in one folder root/ (with an entry for every folder), files
// (paths relative to root, "/"-separated) in name order, deterministic.
func Zip(root string, files map[string]string) []byte {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	entries := []Entry{{Name: root + "/"}}
	dirs := map[string]bool{}
	for _, n := range names {
		parts := strings.Split(n, "/")
		for i := 1; i < len(parts); i++ {
			d := root + "/" + strings.Join(parts[:i], "/") + "/"
			if !dirs[d] {
				dirs[d] = true
				entries = append(entries, Entry{Name: d})
			}
		}
		entries = append(entries, Entry{Name: root + "/" + n, Body: files[n]})
	}
	return ZipOf(entries...)
}

// SHA256 is the hex SHA-256 of b (a zip source's sha256).
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var wpVersionRE = regexp.MustCompile(`(?m)^\$wp_version\s*=\s*'[^']*';`)

// CoreZip zips the WordPress tree at dir under wordpress/, following
// symbolic links (Debian's tree links some libraries elsewhere), stored
// without compression (fast; a core is ~55 MB). When version is set,
// wp-includes/version.php's $wp_version is rewritten to it, so that one
// tree can pose as several core versions.
func CoreZip(version, dir string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var walk func(abs, rel string, depth int) error
	walk = func(abs, rel string, depth int) error {
		if depth > 40 {
			return fmt.Errorf("%s: links nest too deep", abs)
		}
		ents, err := os.ReadDir(abs)
		if err != nil {
			return err
		}
		for _, e := range ents {
			a, r := filepath.Join(abs, e.Name()), rel+"/"+e.Name()
			fi, err := os.Stat(a) // follows links
			if err != nil {
				return err
			}
			if fi.IsDir() {
				if _, err := zw.CreateHeader(&zip.FileHeader{Name: r + "/", Modified: zipTime}); err != nil {
					return err
				}
				if err := walk(a, r, depth+1); err != nil {
					return err
				}
				continue
			}
			if !fi.Mode().IsRegular() {
				continue
			}
			b, err := os.ReadFile(a)
			if err != nil {
				return err
			}
			if r == "wordpress/wp-includes/version.php" && version != "" {
				b = wpVersionRE.ReplaceAll(b, []byte("$$wp_version = '"+version+"';"))
			}
			h := &zip.FileHeader{Name: r, Method: zip.Store, Modified: zipTime}
			h.SetMode(0o644)
			w, err := zw.CreateHeader(h)
			if err != nil {
				return err
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := zw.CreateHeader(&zip.FileHeader{Name: "wordpress/", Modified: zipTime}); err != nil {
		return nil, err
	}
	if err := walk(dir, "wordpress", 0); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
