package wordpress

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
)

//go:embed aipress-cache.php
var cachePlugin []byte

// CachePluginName is the file name of the aipress-cache must-use plugin,
// which tags pages for the edge's page cache and purges it when content
// changes.
const CachePluginName = "aipress-cache.php"

//go:embed aipress-storage.php
var storagePlugin []byte

// StoragePluginName is the file name of the aipress-storage must-use
// plugin, which refuses uploads that would not fit the site's disk limit
// with a clear message. WriteMUPlugins writes it beside the cache plugin.
const StoragePluginName = "aipress-storage.php"

//go:embed aipress-login.php
var loginPlugin []byte

// LoginPluginName is the file name of the aipress-login must-use plugin,
// which signs the site's administrator in from a one-time link
// (internal/loginlink). WriteMUPlugins writes it beside the cache plugin.
const LoginPluginName = "aipress-login.php"

//go:embed db-error.php
var dbErrorDropIn []byte

// DBErrorDropInName is WordPress's drop-in for "Error establishing a
// database connection" (wp-content/db-error.php, included by dead_db()).
// AIPress's answers 503 with Retry-After and the edge's retry marker
// (edge.RetryHeader), so a database restart costs visitors a short wait,
// not a 500. WriteMUPlugins writes it beside the cache plugin; LinkDropIn
// links each site's wp-content to it.
const DBErrorDropInName = "db-error.php"

// CachePlugin returns the source of the aipress-cache must-use plugin.
func CachePlugin() []byte { return append([]byte(nil), cachePlugin...) }

// WriteMUPlugins writes the platform's must-use plugins into dir (root-owned,
// world-readable), replacing a changed file atomically so that PHP never
// reads half of one, and returns the cache plugin's path (the others are
// beside it, by their names).
func WriteMUPlugins(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("mu-plugins: %w", err)
	}
	if err := writePlugin(filepath.Join(dir, StoragePluginName), storagePlugin); err != nil {
		return "", err
	}
	if err := writePlugin(filepath.Join(dir, LoginPluginName), loginPlugin); err != nil {
		return "", err
	}
	if err := writePlugin(filepath.Join(dir, DBErrorDropInName), dbErrorDropIn); err != nil {
		return "", err
	}
	path := filepath.Join(dir, CachePluginName)
	return path, writePlugin(path, cachePlugin)
}

func writePlugin(path string, src []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, src) {
		return os.Chmod(path, 0o644)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, src, 0o644); err != nil {
		return fmt.Errorf("mu-plugins: %w", err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("mu-plugins: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("mu-plugins: %w", err)
	}
	return nil
}

// LinkMUPlugin makes docroot/wp-content/mu-plugins/<base of target> a
// symlink to target (replacing whatever is there). One real file for every
// site means one OPcache entry for all of them, as for the core; the link
// lives in the root-owned mu-plugins directory, so the site cannot remove
// or replace it.
func LinkMUPlugin(docroot, target string) error {
	return linkInto(filepath.Join(docroot, "wp-content", "mu-plugins"), target, "mu-plugin")
}

// LinkDropIn makes docroot/wp-content/<base of target> a symlink to target
// (a drop-in such as db-error.php), replacing whatever is there.
func LinkDropIn(docroot, target string) error {
	return linkInto(filepath.Join(docroot, "wp-content"), target, "drop-in")
}

func linkInto(dir, target, what string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	link := filepath.Join(dir, filepath.Base(target))
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	tmp := link + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
