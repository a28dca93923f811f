package artefact

import (
	"archive/zip"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
)

// entry is one file or folder of an archive (a zip, a git tree) as the
// checks and the unpacking see it.
type entry struct {
	// name is slash-separated, without a trailing slash.
	name string
	dir  bool
	// size is the declared size of a file.
	size int64
	open func() (io.ReadCloser, error)
}

// refuse returns an error wrapping ErrRefused about an entry ("" for the
// archive as a whole).
func refuse(entry, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if entry != "" {
		return fmt.Errorf("%w: %q: %s", ErrRefused, entry, msg)
	}
	return fmt.Errorf("%w: %s", ErrRefused, msg)
}

// zipEntries reads a zip's central directory and refuses what cannot be
// unpacked safely whatever the archive is for: too many entries, bad names,
// links and special files, encryption.
func zipEntries(r io.ReaderAt, size int64, lim Limits) ([]entry, error) {
	if size > lim.MaxArchiveBytes {
		return nil, refuse("", "the archive has %d bytes, more than the limit of %d", size, lim.MaxArchiveBytes)
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, refuse("", "not a zip archive: %v", err)
	}
	if len(zr.File) > lim.MaxFiles {
		return nil, refuse("", "the archive has %d entries, more than the limit of %d", len(zr.File), lim.MaxFiles)
	}
	es := make([]entry, 0, len(zr.File))
	for _, f := range zr.File {
		name, err := checkName(f.Name)
		if err != nil {
			return nil, err
		}
		mode := f.Mode()
		isDir := strings.HasSuffix(f.Name, "/") || mode.IsDir()
		switch {
		case mode&fs.ModeSymlink != 0:
			return nil, refuse(f.Name, "a symbolic link (links are not allowed)")
		case mode&fs.ModeType&^fs.ModeDir != 0:
			return nil, refuse(f.Name, "a special file (%s)", mode.Type())
		case f.Flags&0x1 != 0:
			return nil, refuse(f.Name, "encrypted")
		case isDir && f.UncompressedSize64 != 0:
			return nil, refuse(f.Name, "a folder with content")
		case f.UncompressedSize64 > uint64(lim.MaxUnpackedBytes):
			return nil, refuse(f.Name, "declares %d bytes, more than the limit of %d", f.UncompressedSize64, lim.MaxUnpackedBytes)
		}
		e := entry{name: name, dir: isDir, size: int64(f.UncompressedSize64)}
		if !isDir {
			e.open = f.Open
		}
		es = append(es, e)
	}
	return es, nil
}

// checkName refuses names that could leave the folder they are unpacked
// in or that mean different things on different systems, and returns the
// name without a trailing slash.
func checkName(raw string) (string, error) {
	switch {
	case raw == "" || raw == "/":
		return "", refuse(raw, "an empty name")
	case strings.ContainsRune(raw, 0):
		return "", refuse(raw, "a NUL byte in the name")
	case strings.ContainsRune(raw, '\\'):
		return "", refuse(raw, "a backslash in the name")
	case strings.HasPrefix(raw, "/"):
		return "", refuse(raw, "an absolute name")
	case len(raw) > 1024:
		return "", refuse(raw[:64]+"…", "a name longer than 1024 bytes")
	}
	for _, r := range raw {
		if r < ' ' || r == 0x7f || r == 0xfffd {
			return "", refuse(raw, "a control character or invalid UTF-8 in the name")
		}
	}
	name := strings.TrimSuffix(raw, "/")
	for _, part := range strings.Split(name, "/") {
		switch part {
		case "..":
			return "", refuse(raw, "a name that leaves the archive (..)")
		case ".", "":
			return "", refuse(raw, "an empty or '.' part in the name")
		}
		if len(part) > 255 {
			return "", refuse(raw, "a name part longer than 255 bytes")
		}
	}
	return name, nil
}

// phpExtensions are the extensions PHP-FPM or an include might run.
var phpExtensions = []string{".php", ".phtml", ".phar", ".php3", ".php4", ".php5", ".php7", ".php8", ".phps", ".pht", ".inc"}

func isPHP(name string) bool {
	return slices.Contains(phpExtensions, strings.ToLower(path.Ext(name)))
}

// layout is what the checks learnt of an archive.
type layout struct {
	files   int
	bytes   int64
	version string
	main    string // a plugin's main file, relative to the root folder
}

// checkEntries runs the checks that depend on what the archive is for:
// totals, duplicates, the one root folder named root, and the header that
// makes it a plugin, theme or core (read through the entries' open).
func checkEntries(kind Kind, root string, es []entry, lim Limits) (*layout, error) {
	if len(es) > lim.MaxFiles {
		return nil, refuse("", "%d entries, more than the limit of %d", len(es), lim.MaxFiles)
	}
	if len(es) == 0 {
		return nil, refuse("", "the archive is empty")
	}
	var (
		lo      layout
		exact   = map[string]bool{}
		fold    = map[string]string{} // lower-case path → path, for every path and parent
		parents = map[string]bool{}
		roots   = map[string]bool{}
	)
	for _, e := range es {
		if exact[e.name] {
			return nil, refuse(e.name, "listed twice")
		}
		exact[e.name] = true
		parts := strings.Split(e.name, "/")
		for i := range parts {
			p := strings.Join(parts[:i+1], "/")
			if other, ok := fold[strings.ToLower(p)]; ok && other != p {
				return nil, refuse(e.name, "the same name as %q once case is ignored", other)
			}
			fold[strings.ToLower(p)] = p
			if i < len(parts)-1 {
				parents[p] = true
			}
		}
		if !e.dir {
			lo.files++
			lo.bytes += e.size
			if lo.bytes > lim.MaxUnpackedBytes {
				return nil, refuse("", "more than the limit of %d unpacked bytes", lim.MaxUnpackedBytes)
			}
		}
		if len(parts) == 1 && !e.dir {
			if isPHP(e.name) {
				return nil, refuse(e.name, "PHP outside the root folder %q", root)
			}
			return nil, refuse(e.name, "a file outside the root folder %q (the archive must hold exactly one folder)", root)
		}
		roots[parts[0]] = true
	}
	for _, e := range es {
		if !e.dir && parents[e.name] {
			return nil, refuse(e.name, "both a file and a folder")
		}
	}
	if !roots[root] {
		found := slices.Sorted(mapKeys(roots))
		if len(found) == 1 {
			what := "the " + string(kind) + "'s slug"
			if kind == Core {
				what = "what a core's folder is called"
			}
			return nil, refuse(found[0]+"/", "the root folder is %q, not %q (%s)", found[0], root, what)
		}
		return nil, refuse("", "no root folder %q (found %s)", root, strings.Join(found, ", "))
	}
	for _, e := range es {
		if first, _, _ := strings.Cut(e.name, "/"); first != root {
			if !e.dir && isPHP(e.name) {
				return nil, refuse(e.name, "PHP outside the root folder %q", root)
			}
			return nil, refuse(e.name, "outside the root folder %q (the archive must hold exactly one folder)", root)
		}
	}
	if err := readHeaders(kind, root, es, &lo); err != nil {
		return nil, err
	}
	return &lo, nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// headerBytes is how much of a file WordPress reads for its headers
// (get_file_data: 8 KiB).
const headerBytes = 8 << 10

func readHead(e entry, n int64) ([]byte, error) {
	rc, err := e.open()
	if err != nil {
		return nil, refuse(e.name, "cannot be read: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, n))
	if err != nil {
		return nil, refuse(e.name, "cannot be read: %v", err)
	}
	return b, nil
}

// readHeaders finds the declared version: a plugin's main file, a theme's
// style.css, a core's version.php.
func readHeaders(kind Kind, root string, es []entry, lo *layout) error {
	byName := map[string]entry{}
	for _, e := range es {
		byName[e.name] = e
	}
	switch kind {
	case Plugin:
		var candidates []string
		for _, e := range es {
			if !e.dir && path.Dir(e.name) == root && strings.EqualFold(path.Ext(e.name), ".php") {
				candidates = append(candidates, e.name)
			}
		}
		slices.Sort(candidates)
		for _, c := range candidates {
			b, err := readHead(byName[c], headerBytes)
			if err != nil {
				return err
			}
			if header(b, "Plugin Name") != "" {
				lo.main = path.Base(c)
				lo.version = header(b, "Version")
				return nil
			}
		}
		return refuse(root+"/", "no PHP file in the plugin's folder has a \"Plugin Name:\" header (not a WordPress plugin)")
	case Theme:
		e, ok := byName[root+"/style.css"]
		if ok && !e.dir {
			b, err := readHead(e, headerBytes)
			if err != nil {
				return err
			}
			if header(b, "Theme Name") != "" {
				lo.version = header(b, "Version")
				return nil
			}
		}
		return refuse(root+"/style.css", "missing or without a \"Theme Name:\" header (not a WordPress theme)")
	case Core:
		e, ok := byName[root+"/wp-includes/version.php"]
		if !ok || e.dir {
			return refuse(root+"/wp-includes/version.php", "missing (not a WordPress core)")
		}
		b, err := readHead(e, 64<<10)
		if err != nil {
			return err
		}
		m := coreVersionRE.FindSubmatch(b)
		if m == nil {
			return refuse(e.name, "no $wp_version (not a WordPress core)")
		}
		lo.version = string(m[1])
		return nil
	}
	return fmt.Errorf("unknown kind %q", kind)
}

var coreVersionRE = regexp.MustCompile(`(?m)^\s*\$wp_version\s*=\s*'([0-9A-Za-z.+_-]{1,40})'\s*;`)

// header returns a file header's value as WordPress's get_file_data reads
// it: a line "<?php"?, then any of " \t/*#@", then "Name:" (any case),
// the rest of the line with "*/" and "?>" and surrounding space cut.
func header(b []byte, name string) string {
	sc := bufio.NewScanner(bytes.NewReader(bytes.ReplaceAll(b, []byte("\r"), []byte("\n"))))
	sc.Buffer(make([]byte, 0, headerBytes), headerBytes+1)
	for sc.Scan() {
		line := sc.Text()
		line = strings.TrimLeft(line, " \t")
		line = strings.TrimPrefix(line, "<?php")
		line = strings.TrimLeft(line, " \t/*#@")
		if len(line) <= len(name) || !strings.EqualFold(line[:len(name)], name) || line[len(name)] != ':' {
			continue
		}
		v := line[len(name)+1:]
		if i := strings.Index(v, "*/"); i >= 0 {
			v = v[:i]
		}
		if i := strings.Index(v, "?>"); i >= 0 {
			v = v[:i]
		}
		v = strings.TrimSpace(v)
		if len(v) > 200 {
			v = v[:200]
		}
		return v
	}
	return ""
}
