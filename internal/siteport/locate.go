package siteport

import (
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Layout is where an unpacked archive keeps what an import needs; paths
// are relative to the directory it was unpacked in.
type Layout struct {
	// WPContent is the wp-content directory ("." for a wp-content-only
	// archive); Docroot the directory holding it and wp-includes ("" when
	// the archive has no docroot).
	WPContent string `json:"wp_content"`
	Docroot   string `json:"docroot,omitempty"`
	// Version is the WordPress version of the docroot's
	// wp-includes/version.php ("" without one).
	Version string `json:"wordpress_version,omitempty"`
	// Dump is the SQL dump found ("" if none), Gzip whether it is
	// compressed.
	Dump string `json:"dump,omitempty"`
	Gzip bool   `json:"dump_gzip,omitempty"`
	// Plugins and Themes are the directories (and single-file plugins) of
	// wp-content/plugins and wp-content/themes.
	Plugins []string `json:"plugins,omitempty"`
	Themes  []string `json:"themes,omitempty"`
}

var wpVersionRE = regexp.MustCompile(`\$wp_version\s*=\s*'([^']+)'`)

// contentDirs are what only a wp-content directory holds at its top.
var contentDirs = []string{"plugins", "themes", "uploads", "mu-plugins"}

// Locate finds wp-content, the WordPress version and the SQL dump in dir
// (an unpacked archive): the shallowest directory named wp-content, else
// the shallowest directory holding plugins, themes or uploads (an archive
// of wp-content's contents); the shallowest *.sql or *.sql.gz outside
// wp-content (several at that depth: name one). No wp-content is an
// error.
func Locate(dir string) (*Layout, error) {
	type cand struct {
		rel   string
		depth int
	}
	var content, bare, dumps []cand
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		depth := strings.Count(rel, string(filepath.Separator))
		if rel == "." {
			depth = -1
		}
		if d.IsDir() {
			if depth > 6 {
				return filepath.SkipDir
			}
			if d.Name() == "wp-content" {
				content = append(content, cand{rel, depth})
				return filepath.SkipDir
			}
			for _, c := range contentDirs {
				if st, err := os.Lstat(filepath.Join(p, c)); err == nil && st.IsDir() {
					bare = append(bare, cand{rel, depth})
					break
				}
			}
			return nil
		}
		if n := strings.ToLower(d.Name()); d.Type().IsRegular() && (strings.HasSuffix(n, ".sql") || strings.HasSuffix(n, ".sql.gz")) {
			dumps = append(dumps, cand{rel, depth})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	byDepth := func(a, b cand) int { return a.depth - b.depth }
	slices.SortStableFunc(content, byDepth)
	slices.SortStableFunc(bare, byDepth)
	slices.SortStableFunc(dumps, byDepth)
	l := &Layout{}
	switch {
	case len(content) > 0:
		l.WPContent = content[0].rel
		if len(content) > 1 && content[1].depth == content[0].depth {
			return nil, fmt.Errorf("the archive holds several wp-content directories (%s, %s): import one site at a time", content[0].rel, content[1].rel)
		}
		parent := filepath.Dir(l.WPContent)
		if b, err := os.ReadFile(filepath.Join(dir, parent, "wp-includes", "version.php")); err == nil {
			l.Docroot = parent
			if m := wpVersionRE.FindSubmatch(b); m != nil {
				l.Version = string(m[1])
			}
		}
	case len(bare) > 0:
		l.WPContent = bare[0].rel
	default:
		return nil, fmt.Errorf("no WordPress files in the archive: no wp-content directory (nor one holding plugins, themes or uploads)")
	}
	var outside []cand
	for _, d := range dumps {
		if !within(d.rel, l.WPContent) {
			outside = append(outside, d)
		}
	}
	if len(outside) > 0 {
		if len(outside) > 1 && outside[1].depth == outside[0].depth {
			return nil, fmt.Errorf("the archive holds several SQL dumps (%s, %s): give the one to import separately (--sql)", outside[0].rel, outside[1].rel)
		}
		l.Dump = outside[0].rel
		l.Gzip = strings.HasSuffix(strings.ToLower(l.Dump), ".gz")
	}
	l.Plugins = names(filepath.Join(dir, l.WPContent, "plugins"))
	l.Themes = names(filepath.Join(dir, l.WPContent, "themes"))
	return l, nil
}

// within reports whether rel is in dir (for a wp-content-only archive,
// ".", whether it is below its top).
func within(rel, dir string) bool {
	if dir == "." {
		return strings.ContainsRune(rel, filepath.Separator)
	}
	return rel == dir || strings.HasPrefix(rel, dir+string(filepath.Separator))
}

func names(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.Name() == "index.php" || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		out = append(out, e.Name())
	}
	return out
}

// OpenDump opens the dump at file, decompressing it when it is gzip
// (whatever its name says). A truncated gzip dump fails its reads with
// ErrBroken.
func OpenDump(file string) (io.ReadCloser, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("open the dump: %w", err)
	}
	head := make([]byte, 2)
	n, _ := io.ReadFull(f, head)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	if Sniff(head[:n]) != "gzip" {
		return f, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: the dump %s: %v", ErrBroken, filepath.Base(file), err)
	}
	return gzDump{zr, f}, nil
}

type gzDump struct {
	zr *gzip.Reader
	f  *os.File
}

func (g gzDump) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	if err != nil && err != io.EOF {
		err = brokenGzip(err)
	}
	return n, err
}

func (g gzDump) Close() error { g.zr.Close(); return g.f.Close() }
