package main

import (
	"archive/zip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Usage is what a tree holds on disk, each inode counted once (as du
// does): allocated bytes (blocks), apparent bytes, inodes (files and
// folders), and the apparent bytes of its PHP files (what OPcache would
// compile if every script ran).
type Usage struct {
	Blocks   int64 `json:"disk_bytes"`
	Apparent int64 `json:"apparent_bytes"`
	Inodes   int64 `json:"inodes"`
	Files    int64 `json:"files"`
	PHP      int64 `json:"php_bytes"`
}

// Add returns the sum of u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{u.Blocks + v.Blocks, u.Apparent + v.Apparent, u.Inodes + v.Inodes, u.Files + v.Files, u.PHP + v.PHP}
}

// DiskUsage walks dir without following links.
func DiskUsage(dir string) (Usage, error) {
	var u Usage
	type key struct{ dev, ino uint64 }
	seen := map[key]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat", path)
		}
		k := key{uint64(st.Dev), st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		u.Inodes++
		u.Blocks += st.Blocks * 512
		u.Apparent += st.Size
		if fi.Mode().IsRegular() {
			u.Files++
			if strings.HasSuffix(path, ".php") {
				u.PHP += st.Size
			}
		}
		return nil
	})
	return u, err
}

// unzipCopies unpacks the archive at zipPath into n new folders
// dir/site-1 … dir/site-n, one after another, as n sites each unpacking
// their own copy would (with unzip(1) when installed, else in-process);
// it returns the time of the first copy and of all of them.
func unzipCopies(zipPath, dir string, n int) (first, all time.Duration, err error) {
	unzipBin, _ := exec.LookPath("unzip")
	start := time.Now()
	for i := 1; i <= n; i++ {
		dst := filepath.Join(dir, fmt.Sprintf("site-%d", i))
		if unzipBin != "" {
			if out, err := exec.Command(unzipBin, "-q", zipPath, "-d", dst).CombinedOutput(); err != nil {
				return 0, 0, fmt.Errorf("unzip into %s: %w: %s", dst, err, out)
			}
		} else if err := unzipTo(zipPath, dst); err != nil {
			return 0, 0, err
		}
		if i == 1 {
			first = time.Since(start)
		}
	}
	return first, time.Since(start), nil
}

// unzipTo unpacks a trusted archive (the benchmark's own) into dst.
func unzipTo(zipPath, dst string) error {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, f := range zr.File {
		path := filepath.Join(dst, filepath.FromSlash(f.Name))
		if f.FileInfo().IsDir() {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := writeEntry(f, path); err != nil {
			return fmt.Errorf("unzip %s: %w", f.Name, err)
		}
	}
	return nil
}

func writeEntry(f *zip.File, path string) error {
	r, err := f.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
