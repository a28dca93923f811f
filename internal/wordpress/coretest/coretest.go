// Package coretest makes WordPress core trees for tests: real WordPress
// (Debian's 6.1.9 at wordpress.DebianCore) under another version, whose
// database version is bumped too so that wp_upgrade() really runs its
// migration path (upgrade_all) on a site installed by the real core, and
// optionally broken so that the upgrade fails with a PHP fatal error.
//
// A tree is a full WordPress tree like the one in a wordpress.org zip
// (wordpress/ with wp-content and its bundled theme and plugin, no
// wp-config.php, no links: Debian's symlinks are followed), ready to be
// registered from its directory (wordpress.RegisterCore) or zipped and
// served as a catalogue core (internal/artefact/catalogtest). Files are
// hard-linked from Debian's tree where the file system allows (a core is
// never written in place; the files Build changes are replaced).
package coretest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/aipress/aipress/internal/wordpress"
)

// Options say what core Build makes.
type Options struct {
	// Version is the core's $wp_version, e.g. "6.1.10".
	Version string
	// DBVersion is its $wp_db_version; 0: Debian's plus one (a migration
	// that upgrade_all runs on a 6.1.9 database: populate_options, the
	// schema check, db_version).
	DBVersion int
	// BreakUpgrade injects a PHP fatal error into upgrade_all()
	// (wp-admin/includes/upgrade.php, which only the installer and the
	// database upgrade load): pages still serve, wp_upgrade() fails.
	BreakUpgrade bool
}

// UpgradeFatal is the function whose call BreakUpgrade injects; the PHP
// fatal error of a broken upgrade names it.
const UpgradeFatal = "aipress_coretest_broken_upgrade"

// DebianDBVersion is the $wp_db_version of Debian's core.
func DebianDBVersion(t testing.TB) int {
	t.Helper()
	v, err := wordpress.ReadDBVersion(wordpress.DebianCore)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Available skips t when Debian's WordPress is not installed.
func Available(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(wordpress.DebianCore, "wp-includes", "version.php")); err != nil {
		t.Skip("Debian wordpress not installed (make deps)")
	}
}

// Build makes the core o describes under dir and returns its tree
// (dir/wordpress).
func Build(t testing.TB, dir string, o Options) string {
	t.Helper()
	Available(t)
	tree, err := build(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

var (
	versionRE   = regexp.MustCompile(`\$wp_version\s*=\s*'[^']*'\s*;`)
	dbVersionRE = regexp.MustCompile(`\$wp_db_version\s*=\s*[0-9]+\s*;`)
	upgradeAll  = regexp.MustCompile(`(?m)^function upgrade_all\(\) \{\n`)
)

func build(dir string, o Options) (string, error) {
	if !wordpress.ValidCoreVersion(o.Version) {
		return "", fmt.Errorf("coretest: %q is not a version like 6.1.10", o.Version)
	}
	if o.DBVersion == 0 {
		v, err := wordpress.ReadDBVersion(wordpress.DebianCore)
		if err != nil {
			return "", err
		}
		o.DBVersion = v + 1
	}
	tree := filepath.Join(dir, "wordpress")
	if err := os.RemoveAll(tree); err != nil {
		return "", err
	}
	if err := copyTree(wordpress.DebianCore, tree); err != nil {
		return "", fmt.Errorf("coretest: %w", err)
	}
	err := rewrite(filepath.Join(tree, "wp-includes", "version.php"), func(b []byte) ([]byte, error) {
		if !versionRE.Match(b) || !dbVersionRE.Match(b) {
			return nil, errors.New("no $wp_version or $wp_db_version")
		}
		b = versionRE.ReplaceAll(b, []byte("$$wp_version = '"+o.Version+"';"))
		return dbVersionRE.ReplaceAll(b, []byte("$$wp_db_version = "+strconv.Itoa(o.DBVersion)+";")), nil
	})
	if err != nil {
		return "", fmt.Errorf("coretest: %w", err)
	}
	if o.BreakUpgrade {
		err := rewrite(filepath.Join(tree, "wp-admin", "includes", "upgrade.php"), func(b []byte) ([]byte, error) {
			if !upgradeAll.Match(b) {
				return nil, errors.New("no upgrade_all()")
			}
			return upgradeAll.ReplaceAllLiteral(b, []byte("function upgrade_all() {\n\t"+UpgradeFatal+"();\n")), nil
		})
		if err != nil {
			return "", fmt.Errorf("coretest: %w", err)
		}
	}
	return tree, nil
}

// rewrite replaces the file at p (a hard link to Debian's, perhaps) with
// fn's version of its content: never written in place.
func rewrite(p string, fn func([]byte) ([]byte, error)) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	out, err := fn(b)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if err := os.Remove(p); err != nil {
		return err
	}
	return os.WriteFile(p, out, 0o644)
}

// copyTree recreates src at dst with symlinks followed, leaving out what
// a wordpress.org tree does not have (wp-config.php, .htaccess). Files are
// hard-linked when they can be.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "wp-config.php" || rel == ".htaccess" {
			return nil
		}
		target := filepath.Join(dst, rel)
		fi, err := os.Stat(p) // follows Debian's links
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if d.Type()&fs.ModeSymlink != 0 {
				return copyTree(p, target) // WalkDir does not descend into links
			}
			return os.MkdirAll(target, 0o755)
		case fi.Mode().IsRegular():
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return err
			}
			return linkOrCopy(real, target)
		}
		return nil
	})
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	} else if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EPERM) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
