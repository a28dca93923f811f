// Package wordpress prepares WordPress for sites: it registers Debian's
// `wordpress` package as a versioned, read-only core tree, builds each site's
// docroot on it, writes wp-config.php and runs WordPress's own installer
// through the PHP CLI.
//
// A docroot is a directory of symlinks into the core tree (wp-admin,
// wp-includes, index.php, wp-login.php, ...) beside the site's own
// wp-content and wp-config.php. PHP resolves the symlinks, so every site runs
// the same real core files and one php-fpm master compiles them into OPcache
// once for all its sites; with per-site copies (or hard links, which PHP
// tells apart by path) each site's first request would compile WordPress
// again. The core's own wp-config.php is a shim that loads the configuration
// of the docroot the request came in through ($_SERVER['DOCUMENT_ROOT'],
// which the edge sets and the CLI scripts set for themselves).
package wordpress

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
)

// DebianCore is where Debian's wordpress package installs WordPress.
const DebianCore = "/usr/share/wordpress"

// Core is one registered, read-only WordPress core version.
type Core struct {
	Version string
	// Tree holds the core without wp-config.php, wp-content and .htaccess.
	Tree string
	// Content is the wp-content skeleton (themes, plugins) new sites start with.
	Content string
	// LinkRoots are the directories the core's symlinks point into; the edge
	// may serve static files from there.
	LinkRoots []string
}

// coreLayout names the layout of a registered core; a registration with
// another layout is rebuilt.
const coreLayout = "layout 2: shared tree with config shim"

// coreConfigShim is the core tree's wp-config.php.
var coreConfigShim = []byte(`<?php
// Written by aipress. This WordPress core is shared by many sites; each
// site's configuration is the wp-config.php in the docroot the request came
// in through.
$aipress_docroot = isset($_SERVER['DOCUMENT_ROOT']) ? rtrim($_SERVER['DOCUMENT_ROOT'], '/') : '';
if ($aipress_docroot === '' || !is_file($aipress_docroot . '/wp-config.php')) {
	if (PHP_SAPI !== 'cli') {
		http_response_code(503);
	}
	exit("This site has no configuration.\n");
}
require_once $aipress_docroot . '/wp-config.php';
`)

var versionRe = regexp.MustCompile(`\$wp_version\s*=\s*'([^']+)'`)

// ReadVersion returns the WordPress version of the tree at dir.
func ReadVersion(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "wp-includes", "version.php"))
	if err != nil {
		return "", fmt.Errorf("wordpress version: %w", err)
	}
	m := versionRe.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("wordpress version: no $wp_version in %s", dir)
	}
	return string(m[1]), nil
}

// RegisterCore registers the WordPress tree at src — Debian's (DebianCore)
// or any full WordPress tree, such as a catalogue core the artefact store
// unpacked — under coresDir/<version>, the version being the one the
// tree's wp-includes/version.php declares. Files are hard-linked where
// they can be (the source is root's and read-only), copied otherwise.
// It is idempotent: an existing complete registration of that version is
// reused (whatever tree it was made from); a partial one (from a crash) is
// rebuilt.
func RegisterCore(src, coresDir string) (*Core, error) {
	version, err := ReadVersion(src)
	if err != nil {
		return nil, err
	}
	if !ValidCoreVersion(version) {
		return nil, fmt.Errorf("register core: %s declares version %q, which is not a version like 6.4.2", src, version)
	}
	dir := filepath.Join(coresDir, version)
	c := &Core{Version: version, Tree: filepath.Join(dir, "tree"), Content: filepath.Join(dir, "content")}
	done := filepath.Join(dir, ".complete")
	if b, err := os.ReadFile(done); err != nil || string(b) != version+"\n"+coreLayout+"\n" {
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("register core: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("register core: %w", err)
		}
		skip := map[string]bool{"wp-config.php": true, "wp-content": true, ".htaccess": true}
		if err := cloneTree(src, c.Tree, func(rel string) bool { return skip[rel] }, true); err != nil {
			return nil, fmt.Errorf("register core: %w", err)
		}
		// The tree's wp-content (Debian's, or a catalogue core's with its
		// bundled themes and plugins) is the skeleton new docroots link.
		if _, err := os.Stat(filepath.Join(src, "wp-content")); err == nil {
			if err := cloneTree(filepath.Join(src, "wp-content"), c.Content, nil, true); err != nil {
				return nil, fmt.Errorf("register core content: %w", err)
			}
		}
		for _, d := range []string{"themes", "plugins"} {
			if err := os.MkdirAll(filepath.Join(c.Content, d), 0o755); err != nil {
				return nil, fmt.Errorf("register core content: %w", err)
			}
		}
		if err := os.WriteFile(filepath.Join(c.Tree, "wp-config.php"), coreConfigShim, 0o644); err != nil {
			return nil, fmt.Errorf("register core: %w", err)
		}
		if err := os.WriteFile(done, []byte(version+"\n"+coreLayout+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("register core: %w", err)
		}
	}
	roots, err := linkRoots(dir)
	if err != nil {
		return nil, err
	}
	c.LinkRoots = append([]string{dir}, roots...)
	return c, nil
}

// linkRoots returns the distinct parent directories of the absolute symlink
// targets under dir.
func linkRoots(dir string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		t, err := os.Readlink(p)
		if err != nil {
			return err
		}
		real, err := filepath.EvalSymlinks(t)
		if err != nil {
			return nil // dangling link: nothing to serve
		}
		root := filepath.Dir(real)
		if !seen[root] {
			seen[root] = true
			out = append(out, root)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("core link roots: %w", err)
	}
	return out, nil
}

// cloneTree recreates src at dst: directories are created (0755), regular
// files hard-linked (copied across file systems), symlinks recreated — with
// relative targets made absolute when absLinks is set, since the clone lives
// elsewhere. skip, if set, is asked about every path relative to src.
func cloneTree(src, dst string, skip func(rel string) bool, absLinks bool) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel != "." && skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if absLinks && !filepath.IsAbs(link) {
				link = filepath.Join(filepath.Dir(p), link)
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			return linkOrCopy(p, target)
		default:
			return nil // sockets, devices: never part of a core
		}
	})
}

func linkOrCopy(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EPERM) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// BuildDocroot creates docroot on core: a symlink to every top-level entry
// of the core tree (but its wp-config.php shim), and a wp-content of the
// site's own whose bundled themes and plugins link to the core's copies.
// It builds in a temporary directory and renames it into place, so a crash
// leaves either nothing or a complete docroot; an existing docroot is kept.
func BuildDocroot(c *Core, docroot string) error {
	if _, err := os.Stat(docroot); err == nil {
		return nil
	}
	tmp := docroot + ".building"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("build docroot: %w", err)
	}
	if err := linkEntries(c.Tree, tmp, "wp-config.php"); err != nil {
		return fmt.Errorf("build docroot: %w", err)
	}
	if err := BuildContent(c, filepath.Join(tmp, "wp-content")); err != nil {
		return err
	}
	if err := os.Rename(tmp, docroot); err != nil {
		return fmt.Errorf("build docroot: %w", err)
	}
	return nil
}

// BuildContent makes the wp-content of a docroot on core in content (made
// if missing, empty otherwise): its bundled themes and plugins link to the
// core's copies; uploads, mu-plugins and upgrade are the site's own.
func BuildContent(c *Core, content string) error {
	for _, d := range []string{"themes", "plugins"} {
		if err := linkEntries(filepath.Join(c.Content, d), filepath.Join(content, d)); err != nil {
			return fmt.Errorf("build docroot content: %w", err)
		}
	}
	for _, d := range []string{"uploads", "mu-plugins", "upgrade"} {
		if err := os.MkdirAll(filepath.Join(content, d), 0o755); err != nil {
			return fmt.Errorf("build docroot: %w", err)
		}
	}
	return nil
}

// linkEntries creates dst and in it a symlink to every entry of src except
// those named in skip.
func linkEntries(src, dst string, skip ...string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		if slices.Contains(skip, e.Name()) {
			continue
		}
		if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// CoreVersionOf returns the version of the core a docroot was built from.
func CoreVersionOf(docroot string) (string, error) {
	v, err := ReadVersion(docroot)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(v), nil
}
