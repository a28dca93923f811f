package wordpress

// Several cores: a shard registers more than one WordPress version side by
// side (coresDir/<version>, each in the layout RegisterCore makes), and a
// docroot is moved from one to another by relinking its core symlinks
// (RelinkDocroot). The database follows with WordPress's own upgrade
// (Runner.Upgrade).

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var coreVersionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,3}$`)

// ValidCoreVersion reports whether v is a WordPress version like 6.4.2
// (what a core's directory under a shard's cores is named after).
func ValidCoreVersion(v string) bool { return coreVersionRE.MatchString(v) && len(v) <= 40 }

// OpenCore returns the core registered under coresDir/version. It fails
// (wrapping fs.ErrNotExist) when no complete registration is there.
func OpenCore(coresDir, version string) (*Core, error) {
	if !ValidCoreVersion(version) {
		return nil, fmt.Errorf("open core: %q is not a version like 6.4.2", version)
	}
	dir := filepath.Join(coresDir, version)
	b, err := os.ReadFile(filepath.Join(dir, ".complete"))
	if err != nil {
		return nil, fmt.Errorf("open core %s: %w", version, err)
	}
	if string(b) != version+"\n"+coreLayout+"\n" {
		return nil, fmt.Errorf("open core %s: registration incomplete or of another layout: %w", version, fs.ErrNotExist)
	}
	c := &Core{Version: version, Tree: filepath.Join(dir, "tree"), Content: filepath.Join(dir, "content")}
	roots, err := linkRoots(dir)
	if err != nil {
		return nil, err
	}
	c.LinkRoots = append([]string{dir}, roots...)
	return c, nil
}

var dbVersionRe = regexp.MustCompile(`\$wp_db_version\s*=\s*([0-9]+)\s*;`)

// ReadDBVersion returns the database version ($wp_db_version) the
// WordPress tree at dir declares.
func ReadDBVersion(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "wp-includes", "version.php"))
	if err != nil {
		return 0, fmt.Errorf("wordpress db version: %w", err)
	}
	m := dbVersionRe.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("wordpress db version: no $wp_db_version in %s", dir)
	}
	return strconv.Atoi(string(m[1]))
}

// coreLink is where a symlink of a docroot points when it points into a
// registered core under coresDir: Version's tree (Part "tree", Kind "",
// Name the top-level entry) or its content skeleton (Part "content", Kind
// "themes" or "plugins", Name the bundled extension).
type coreLink struct {
	Version, Part, Kind, Name string
}

// parseCoreLink tells whether target (a symlink's target, never followed)
// points into a registered core under coresDir, and where.
func parseCoreLink(coresDir, target string) (coreLink, bool) {
	if !filepath.IsAbs(target) {
		return coreLink{}, false
	}
	rel, err := filepath.Rel(coresDir, filepath.Clean(target))
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return coreLink{}, false
	}
	parts := strings.Split(rel, string(filepath.Separator))
	switch {
	case len(parts) == 3 && parts[1] == "tree" && ValidCoreVersion(parts[0]):
		return coreLink{Version: parts[0], Part: "tree", Name: parts[2]}, true
	case len(parts) == 4 && parts[1] == "content" && (parts[2] == "themes" || parts[2] == "plugins") && ValidCoreVersion(parts[0]):
		return coreLink{Version: parts[0], Part: "content", Kind: parts[2], Name: parts[3]}, true
	}
	return coreLink{}, false
}

// CoresDir is the directory c is registered in (RegisterCore's coresDir).
func (c *Core) CoresDir() string { return filepath.Dir(filepath.Dir(c.Tree)) }

// LinkedCoreVersion returns the version of the core under coresDir that
// docroot runs: the one its wp-includes links into (RelinkDocroot moves
// that link last, so a relink a crash interrupted still reads as the core
// it started from). Nothing is followed: the link is read, not resolved.
func LinkedCoreVersion(coresDir, docroot string) (string, error) {
	target, err := os.Readlink(filepath.Join(docroot, "wp-includes"))
	if err != nil {
		return "", fmt.Errorf("docroot core: %w", err)
	}
	l, ok := parseCoreLink(coresDir, target)
	if !ok || l.Part != "tree" {
		return "", fmt.Errorf("docroot core: %s/wp-includes links to %s, not into a core under %s", docroot, target, coresDir)
	}
	return l.Version, nil
}

// relinkSuffix names the temporary link RelinkDocroot renames over an
// entry (what a crash may leave; the next relink replaces it).
const relinkSuffix = ".aipress-relink"

// RelinkDocroot moves docroot onto core c: every top-level symlink into a
// core registered beside c (the same coresDir) is pointed at c's entry of
// that name, c's entries the docroot lacks are linked, and links to
// entries c does not have are removed; in wp-content/themes and
// wp-content/plugins the links into a core's content skeleton (the bundled
// themes and plugins) are pointed at c's copies when c bundles that
// extension too (one it does not bundle keeps its link into the old
// core's content: WordPress's own core upgrades never delete a bundled
// theme either, and c does not add its new bundled extensions, which a
// site may have removed). The site's own files — wp-config.php, uploads,
// mu-plugins, links to anything else (the artefact store) — are left
// alone.
//
// Each link is replaced atomically (a new link renamed over the old), and
// every request runs one core throughout: PHP resolves the entry script's
// symlink and WordPress then loads everything relative to that real
// location (ABSPATH). wp-includes is moved last, so LinkedCoreVersion
// reports the old core until the relink is complete. It is idempotent,
// and a relink a crash interrupted is finished by running it again (to
// either core). changed reports whether any link changed. The directories
// it writes in are root's; links are read, never followed.
func RelinkDocroot(c *Core, docroot string) (changed bool, err error) {
	coresDir := c.CoresDir()
	wrap := func(err error) error {
		return fmt.Errorf("relink docroot %s to WordPress %s: %w", docroot, c.Version, err)
	}
	fi, err := os.Lstat(docroot)
	if err != nil {
		return false, wrap(err)
	}
	if !fi.IsDir() {
		return false, wrap(errors.New("not a directory"))
	}
	ents, err := os.ReadDir(c.Tree)
	if err != nil {
		return false, wrap(err)
	}
	want := map[string]bool{}
	var names []string
	for _, e := range ents {
		if e.Name() == "wp-config.php" {
			continue // the shim: the docroot has its own
		}
		want[e.Name()] = true
		names = append(names, e.Name())
	}
	// wp-includes last (see LinkedCoreVersion).
	slices.SortStableFunc(names, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == "wp-includes":
			return 1
		case b == "wp-includes":
			return -1
		}
		return strings.Compare(a, b)
	})
	// Links to entries c lacks go first (removing one changes nothing a
	// request of c's needs).
	have, err := os.ReadDir(docroot)
	if err != nil {
		return false, wrap(err)
	}
	for _, e := range have {
		p := filepath.Join(docroot, e.Name())
		if strings.HasSuffix(e.Name(), relinkSuffix) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return changed, wrap(err)
			}
			continue
		}
		if e.Type()&fs.ModeSymlink == 0 || want[e.Name()] {
			continue
		}
		target, err := os.Readlink(p)
		if err != nil {
			return changed, wrap(err)
		}
		if l, ok := parseCoreLink(coresDir, target); ok && l.Part == "tree" {
			if err := os.Remove(p); err != nil {
				return changed, wrap(err)
			}
			changed = true
		}
	}
	for _, name := range names {
		ch, err := relink(coresDir, filepath.Join(docroot, name), filepath.Join(c.Tree, name), "tree", true)
		if err != nil {
			return changed, wrap(err)
		}
		changed = changed || ch
	}
	for _, kind := range []string{"themes", "plugins"} {
		dir := filepath.Join(docroot, "wp-content", kind)
		fi, err := os.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return changed, wrap(err)
		}
		if !fi.IsDir() {
			return changed, wrap(fmt.Errorf("wp-content/%s is not a directory", kind))
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return changed, wrap(err)
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			if strings.HasSuffix(e.Name(), relinkSuffix) {
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return changed, wrap(err)
				}
				continue
			}
			if e.Type()&fs.ModeSymlink == 0 {
				continue
			}
			target, err := os.Readlink(p)
			if err != nil {
				return changed, wrap(err)
			}
			l, ok := parseCoreLink(coresDir, target)
			if !ok || l.Part != "content" || l.Kind != kind {
				continue // the site's own (an artefact), not a bundled one
			}
			dst := filepath.Join(c.Content, kind, e.Name())
			if _, err := os.Lstat(dst); err != nil {
				continue // c does not bundle it: keep the old core's copy
			}
			ch, err := relink(coresDir, p, dst, "content", false)
			if err != nil {
				return changed, wrap(err)
			}
			changed = changed || ch
		}
	}
	return changed, nil
}

// relink makes p a symlink to target. An existing p is replaced only when
// it is a symlink into a registered core's part (or, with create, missing);
// anything else there is refused.
func relink(coresDir, p, target, part string, create bool) (bool, error) {
	cur, err := os.Readlink(p)
	switch {
	case err == nil && cur == target:
		return false, nil
	case err == nil:
		if l, ok := parseCoreLink(coresDir, cur); !ok || l.Part != part {
			return false, fmt.Errorf("%s links to %s, not into a WordPress core: left alone", p, cur)
		}
	case errors.Is(err, fs.ErrNotExist):
		if !create {
			return false, nil
		}
	default:
		if _, serr := os.Lstat(p); serr == nil {
			return false, fmt.Errorf("%s is not a link into a WordPress core: left alone", p)
		}
		return false, err
	}
	tmp := p + relinkSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := os.Symlink(target, tmp); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return false, err
	}
	return true, nil
}

//go:embed upgrade.php
var upgradeScript []byte

// WriteUpgradeScript writes the database upgrade script (upgrade.php) into
// dir (root-owned, world-readable) and returns its path.
func WriteUpgradeScript(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("wordpress upgrade script: %w", err)
	}
	p := filepath.Join(dir, "upgrade.php")
	if err := writePlugin(p, upgradeScript); err != nil {
		return "", fmt.Errorf("wordpress upgrade script: %w", err)
	}
	return p, nil
}

// UpgradeResult is what the upgrade script reports.
type UpgradeResult struct {
	// WPVersion is the core's version ($wp_version) the upgrade ran on.
	WPVersion string `json:"wp_version"`
	// DBVersionBefore and DBVersionAfter are the site's db_version option
	// before and after; CoreDBVersion is the core's $wp_db_version.
	DBVersionBefore string `json:"db_version_before"`
	DBVersionAfter  string `json:"db_version_after"`
	CoreDBVersion   string `json:"core_db_version"`
	// Upgraded: the database version changed.
	Upgraded bool `json:"upgraded"`
}

// Upgrade runs WordPress's database upgrade (wp_upgrade) for the site
// with script (WriteUpgradeScript's): a no-op when the database is at
// the core's version. It fails when the script fails (a PHP fatal error
// included) or leaves the database at another version.
func (r Runner) Upgrade(ctx context.Context, script string) (*UpgradeResult, error) {
	out, err := r.run(ctx, script, nil, 10*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("wordpress database upgrade: %w", err)
	}
	var res UpgradeResult
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || res.DBVersionAfter == "" {
		return nil, fmt.Errorf("wordpress database upgrade: %s", summarize(out))
	}
	return &res, nil
}
