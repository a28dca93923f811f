package siteport

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/artefact"
)

// Extension is a plugin or theme of an archive's wp-content, and whether
// the shared artefact store would take it (package artefact's checks, the
// same as an upload's: POST /v1/artefacts).
type Extension struct {
	Kind string `json:"kind"` // "plugin" or "theme"
	Name string `json:"name"` // its folder (or file) in wp-content/plugins or themes
	// Storable says artefact's checks accept it: Version is the version
	// it declares, SHA256 the digest of Zip, its folder packed as a zip
	// (deterministically: the same files give the same SHA-256, so two
	// imports of one plugin are one upload). Otherwise Reason says why
	// it stays in the site's own tree.
	Storable bool   `json:"storable"`
	Version  string `json:"version,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Zip      string `json:"-"`
	// Artefact is what artefact.Inspect found in Zip.
	Artefact *artefact.Artefact `json:"-"`
	// Active says the dump has it active (a plugin in active_plugins, a
	// theme as the stylesheet option).
	Active bool `json:"active"`
}

// activePluginRE finds the plugin files ("slug/main.php") in the
// serialised active_plugins option.
var activePluginRE = regexp.MustCompile(`s:\d+:"([^"/]+)/[^"]*"`)

// markActive sets Active on the exts the dump's options activate.
func markActive(exts []Extension, activePlugins, stylesheet string) {
	on := map[string]bool{}
	for _, m := range activePluginRE.FindAllStringSubmatch(activePlugins, -1) {
		on["plugin/"+m[1]] = true
	}
	if stylesheet != "" {
		on["theme/"+stylesheet] = true
	}
	for i := range exts {
		exts[i].Active = on[exts[i].Kind+"/"+exts[i].Name]
	}
}

// zipEpoch is the modification time of every entry PackExtensions writes:
// the zip's bytes depend only on the files' names and contents.
var zipEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// PackExtensions checks each plugin and theme of the unpacked wp-content
// at scratch/layout.WPContent against package artefact's rules (lim):
// a single-file plugin, a folder that held links in the archive (skipped,
// the Extracted.Skipped of the unpacking), a folder larger than
// lim.MaxUnpackedBytes or refused by artefact.Inspect stays in the site's
// tree with the reason; the others are packed into out (a directory the
// caller removes) as <kind>-<name>.zip. Errors are the file system's.
func PackExtensions(scratch string, layout *Layout, skipped []string, out string, lim artefact.Limits) ([]Extension, error) {
	lim = withDefaultLimits(lim)
	var exts []Extension
	for _, kd := range []struct {
		kind  artefact.Kind
		dir   string
		names []string
	}{{artefact.Plugin, "plugins", layout.Plugins}, {artefact.Theme, "themes", layout.Themes}} {
		for _, name := range kd.names {
			e := Extension{Kind: string(kd.kind), Name: name}
			rel := filepath.ToSlash(filepath.Join(layout.WPContent, kd.dir, name))
			if err := packOne(&e, kd.kind, filepath.Join(scratch, rel), rel, skipped, out, lim); err != nil {
				return nil, err
			}
			exts = append(exts, e)
		}
	}
	return exts, nil
}

func withDefaultLimits(l artefact.Limits) artefact.Limits {
	d := artefact.DefaultLimits
	if l.MaxArchiveBytes <= 0 {
		l.MaxArchiveBytes = d.MaxArchiveBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxUnpackedBytes <= 0 {
		l.MaxUnpackedBytes = d.MaxUnpackedBytes
	}
	return l
}

func packOne(e *Extension, kind artefact.Kind, dir, rel string, skipped []string, out string, lim artefact.Limits) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("pack %s: %w", rel, err)
	}
	if !fi.IsDir() {
		e.Reason = "a single file, not a folder"
		return nil
	}
	for _, s := range skipped {
		if strings.HasPrefix(s, rel+"/") {
			e.Reason = "it holds links: " + s
			return nil
		}
	}
	var files int
	var bytes int64
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files++
			bytes += fi.Size()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", rel, err)
	}
	switch {
	case files > lim.MaxFiles:
		e.Reason = fmt.Sprintf("too many files: %d, beyond the limit of %d", files, lim.MaxFiles)
		return nil
	case bytes > lim.MaxUnpackedBytes:
		e.Reason = fmt.Sprintf("too big: %d bytes, beyond the limit of %d", bytes, lim.MaxUnpackedBytes)
		return nil
	}
	zpath := filepath.Join(out, string(kind)+"-"+e.Name+".zip")
	if err := packDir(dir, e.Name, zpath); err != nil {
		return fmt.Errorf("pack %s: %w", rel, err)
	}
	f, err := os.Open(zpath)
	if err != nil {
		return fmt.Errorf("pack %s: %w", rel, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("pack %s: %w", rel, err)
	}
	a, err := artefact.Inspect(f, st.Size(), kind, lim)
	if err != nil {
		if !errors.Is(err, artefact.ErrRefused) {
			return fmt.Errorf("pack %s: %w", rel, err)
		}
		e.Reason = strings.TrimPrefix(err.Error(), artefact.ErrRefused.Error()+": ")
		_ = os.Remove(zpath)
		return nil
	}
	sum, err := fileSHA256(zpath)
	if err != nil {
		return fmt.Errorf("pack %s: %w", rel, err)
	}
	e.Storable, e.Version, e.SHA256, e.Zip, e.Artefact = true, a.Version, sum, zpath, a
	return nil
}

// packDir writes the folder dir as a zip at to whose one root folder is
// name: entries in lexical order, every one dated zipEpoch, files 0644
// and folders 0755, so equal trees give equal bytes.
func packDir(dir, name, to string) (err error) {
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	zw := zip.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(dir, p)
		zn := name
		if r != "." {
			zn = name + "/" + filepath.ToSlash(r)
		}
		switch {
		case d.IsDir():
			h := &zip.FileHeader{Name: zn + "/", Method: zip.Store, Modified: zipEpoch}
			h.SetMode(fs.ModeDir | 0o755)
			_, err := zw.CreateHeader(h)
			return err
		case d.Type().IsRegular():
			h := &zip.FileHeader{Name: zn, Method: zip.Deflate, Modified: zipEpoch}
			h.SetMode(0o644)
			w, err := zw.CreateHeader(h)
			if err != nil {
				return err
			}
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = src.WriteTo(w)
			return err
		default:
			// The scratch tree holds only folders and regular files.
			return nil
		}
	})
	if err != nil {
		return err
	}
	return zw.Close()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
