package phpfpm

// OPcache's file cache, filled by root, read by every pool.
//
// Adding or removing a pool makes php-fpm re-execute its master (USR2),
// and OPcache's shared memory goes with the old process: after another
// site's creation or deletion, every site of the shard compiles all of
// WordPress again on its next request (on a 2-core machine about 0.5 s
// instead of 0.08 s), and a new site's first request always does.
//
// With opcache.file_cache, a script missing from shared memory is looked
// up in a directory of compiled scripts (<dir>/<PHP system id>/<path>.bin)
// before it is compiled, and loaded into shared memory from there. A
// writable cache shared by all sites would let one site's PHP plant
// compiled code that another site runs, so the directory is root's
// (0711 directories, 0644 files): the workers, running as site users,
// only read it — their attempts to store a script fail, which OPcache
// shrugs off (a warning below its default log level) — and only root
// fills it, with FillFileCache, from trees that are root's and read-only
// to sites (the shard's WordPress cores). Nothing a site wrote is ever
// compiled into it, and everything in it is compiled from files every
// site may read anyway (so whether opcache.validate_permission applies
// to a script loaded from the file cache does not matter). A script whose file changed since it was compiled
// (its modification time, which OPcache checks with
// opcache.validate_timestamps) is compiled afresh, and every cached file
// carries a checksum (opcache.file_cache_consistency_checks, on by
// default), so a file cut short by a crash is ignored.
//
// The cache is filled by the PHP command line, which has the same system
// id as php-fpm when both load the same extensions (Debian's cli and fpm
// configurations do); where they differ, php-fpm finds nothing in the
// cache and compiles as before.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// fillScript compiles every path on its standard input into the file
// cache (opcache.file_cache_only) without running it, and prints the paths
// it could not compile. A compile may fail only because an earlier file of
// the same process declared a function (WordPress's wp-admin/includes/
// noop.php declares stand-ins of core functions): those are retried one
// process each. A failed compile leaves the process's exit status 255
// although the script goes on: "#done" at the end says it went through.
const fillScript = `<?php
while (($f = fgets(STDIN)) !== false) {
	$f = rtrim($f, "\n");
	$ok = false;
	try { $ok = @opcache_compile_file($f); } catch (Throwable $e) { $ok = false; }
	if (!$ok) { echo $f, "\n"; }
}
echo "#done\n";
`

// fileCacheArgs are the master's command-line definitions for the file
// cache.
func (m *Master) fileCacheArgs() []string {
	if m.FileCache == "" {
		return nil
	}
	return []string{"-d", "opcache.file_cache=" + m.FileCache}
}

// prepareFileCache creates the file cache directory: root's, 0711 (a
// worker opens a cached script by its path; it cannot list or write).
func (m *Master) prepareFileCache() error {
	if m.FileCache == "" {
		return nil
	}
	if err := os.MkdirAll(m.FileCache, 0o711); err != nil {
		return fmt.Errorf("php-fpm: file cache: %w", err)
	}
	if err := os.Chmod(m.FileCache, 0o711); err != nil {
		return fmt.Errorf("php-fpm: file cache: %w", err)
	}
	return nil
}

// FillFileCache compiles every .php file under dir into the master's file
// cache with the PHP command line php, unless an earlier call filled it
// from the same tree with the same PHP. dir must be a tree no site can
// write (a WordPress core): whatever it holds is served, compiled, to
// every site that includes the same path. It returns how many files were
// compiled now (0 when the cache was already filled). Without FileCache it
// does nothing.
func (m *Master) FillFileCache(ctx context.Context, php, dir string) (int, error) {
	if m.FileCache == "" {
		return 0, nil
	}
	m.fillMu.Lock()
	defer m.fillMu.Unlock()
	marker, err := m.fillMarker(php, dir)
	if err != nil {
		return 0, err
	}
	if _, err := os.Stat(marker); err == nil {
		return 0, nil
	}
	var files []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// Regular files only: a link's target is compiled under the
		// path it resolves to when its own tree is filled.
		if d.Type().IsRegular() && strings.HasSuffix(p, ".php") && !strings.ContainsRune(p, '\n') {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("php-fpm: file cache: %w", err)
	}
	script := filepath.Join(m.Dir, "filecache-fill.php")
	if err := writeAtomic(script, []byte(fillScript), 0o600); err != nil {
		return 0, fmt.Errorf("php-fpm: file cache: %w", err)
	}
	run := func(list []string) ([]string, error) {
		cmd := exec.CommandContext(ctx, php,
			"-d", "opcache.enable_cli=1",
			"-d", "opcache.file_cache="+m.FileCache,
			"-d", "opcache.file_cache_only=1",
			"-d", "opcache.validate_timestamps=1",
			"-d", "opcache.revalidate_path=1",
			"-d", "memory_limit=-1",
			"-d", "display_errors=0",
			"-d", "log_errors=0",
			script)
		cmd.Stdin = strings.NewReader(strings.Join(list, "\n") + "\n")
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		runErr := cmd.Run()
		var failed []string
		done := false
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			switch l := sc.Text(); l {
			case "":
			case "#done":
				done = true
			default:
				failed = append(failed, l)
			}
		}
		if !done || ctx.Err() != nil {
			return nil, fmt.Errorf("php-fpm: file cache: %s did not finish: %w: %s", php, errors.Join(runErr, ctx.Err()), strings.TrimSpace(errb.String()))
		}
		return failed, sc.Err()
	}
	failed, err := run(files)
	if err != nil {
		return 0, err
	}
	n := len(files) - len(failed)
	for _, f := range failed {
		again, err := run([]string{f})
		if err != nil {
			return 0, err
		}
		if len(again) == 0 {
			n++
		}
	}
	if err := m.publishFileCache(); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(marker), 0o700); err != nil {
		return 0, fmt.Errorf("php-fpm: file cache: %w", err)
	}
	if err := os.WriteFile(marker, []byte(dir+"\n"), 0o600); err != nil {
		return 0, fmt.Errorf("php-fpm: file cache: %w", err)
	}
	return n, nil
}

// fillMarker is the file that records that dir was compiled with php (its
// path, size and modification time: an upgraded PHP has another system id
// and fills the cache again).
func (m *Master) fillMarker(php, dir string) (string, error) {
	st, err := os.Stat(php)
	if err != nil {
		return "", fmt.Errorf("php-fpm: file cache: %w", err)
	}
	// And the tree's own modification time: a tree registered again
	// (removed and rebuilt) is compiled again.
	dst, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("php-fpm: file cache: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s\x00%d", php, st.Size(), st.ModTime().UnixNano(), dir, dst.ModTime().UnixNano())
	return filepath.Join(m.Dir, "filecache-filled", hex.EncodeToString(h.Sum(nil))[:24]), nil
}

// publishFileCache makes what the command line wrote readable by the
// workers: OPcache creates its directories 0700 and its files 0600.
func (m *Master) publishFileCache() error {
	err := filepath.WalkDir(m.FileCache, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Chmod(p, 0o711)
		case d.Type().IsRegular():
			return os.Chmod(p, 0o644)
		default:
			// Nothing else belongs here; WalkDir does not follow links.
			return os.Remove(p)
		}
	})
	if err != nil {
		return fmt.Errorf("php-fpm: file cache: %w", err)
	}
	return nil
}
