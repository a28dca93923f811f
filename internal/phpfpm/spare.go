package phpfpm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
)

// ErrSpareUnfit is Claim's answer for a spare that cannot serve the pool
// asked for (other settings, not loaded as written, or gone): the caller
// starts the pool as usual. Nothing was changed.
var ErrSpareUnfit = errors.New("php-fpm: the spare pool does not fit")

// socketLink is what a site's socket path may link to: a spare's socket
// in the same directory.
var socketLink = regexp.MustCompile(`^[a-z0-9_]{1,64}\.sock$`)

// spareLink is the link below SpareDir that spare pool name's working
// directory, temporary directory and error log are under.
func (m *Master) spareLink(name string) string { return filepath.Join(m.SpareDir, name) }

// listenPath is where pool name listens: its socket path, or the spare's
// socket that path links to (Claim). m.mu is held.
func (m *Master) listenPath(name string) string {
	sock := m.Socket(name)
	if t, err := os.Readlink(sock); err == nil && socketLink.MatchString(t) {
		return filepath.Join(m.runDir(), t)
	}
	return sock
}

// spareConf renders p as spare pool spare would have been written for it:
// under the spare's name, socket, link and slow log, running as the
// numeric IDs uid and gid.
func (m *Master) spareConf(p Pool, spare, uid, gid string) ([]byte, error) {
	p.Name, p.User, p.Group = spare, uid, gid
	p.SiteDir, p.SlowLog = m.spareLink(spare), m.SlowLog(spare)
	if p.Nice == nil {
		p.Nice = m.nice
	}
	return RenderPool(p, m.Socket(spare))
}

// WriteSpares writes spare pools (see "Spare pools" in the package
// documentation), which the next reload starts (ApplyPending, or one that
// a new pool makes): a pass that reloads anyway starts them without a
// reload of their own. Each p names the spare (Name) and its own user and
// group, which must exist and own nothing of any site; SiteDir and
// SlowLog are set here, and every other setting is the one the site that
// claims it must ask for.
func (m *Master) WriteSpares(ps []Pool) error {
	if m.SpareDir == "" {
		return errors.New("php-fpm: spares need a SpareDir")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range ps {
		u, err := user.Lookup(p.User)
		if err != nil {
			return fmt.Errorf("php-fpm: spare pool %s: its user: %w", p.Name, err)
		}
		g, err := user.LookupGroup(p.Group)
		if err != nil {
			return fmt.Errorf("php-fpm: spare pool %s: its group: %w", p.Name, err)
		}
		if _, ok := m.removed[p.Name]; ok {
			return fmt.Errorf("php-fpm: spare pool %s: removed and still loaded", p.Name)
		}
		conf, err := m.spareConf(p, p.Name, u.Uid, g.Gid)
		if err != nil {
			return err
		}
		if err := relink(m.spareLink(p.Name), "."); err != nil {
			return fmt.Errorf("php-fpm: spare pool %s: %w", p.Name, err)
		}
		if err := writeAtomic(m.PoolFile(p.Name), conf, 0o644); err != nil {
			return fmt.Errorf("php-fpm: %w", err)
		}
		m.owed = true
		if m.unloaded == nil {
			m.unloaded = map[string]bool{}
		}
		m.unloaded[p.Name] = true
	}
	return nil
}

// SpareFits reports whether spare pool spare is loaded as written and
// would serve p as Claim gives it (p's user aside, which the claim renames
// the spare's into).
func (m *Master) SpareFits(spare string, p Pool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.spareFits(spare, p) == nil
}

// SpareMatches reports whether spare pool spare's file is written for p's
// settings, loaded or not.
func (m *Master) SpareMatches(spare string, p Pool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.spareMatches(spare, p) == nil
}

// spareFits is SpareFits with the reason. m.mu is held.
func (m *Master) spareFits(spare string, p Pool) error {
	if m.pending || m.proc == nil || m.proc.PID() <= 0 {
		return fmt.Errorf("%w: the master's configuration is not known to be loaded", ErrSpareUnfit)
	}
	if _, ok := m.removed[spare]; ok {
		return fmt.Errorf("%w: removed", ErrSpareUnfit)
	}
	if m.unloaded[spare] {
		return fmt.Errorf("%w: not loaded yet", ErrSpareUnfit)
	}
	if err := m.spareMatches(spare, p); err != nil {
		return err
	}
	if fi, err := os.Lstat(m.Socket(spare)); err != nil || fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%w: not listening", ErrSpareUnfit)
	}
	return nil
}

// spareMatches is SpareMatches with the reason. m.mu is held.
func (m *Master) spareMatches(spare string, p Pool) error {
	if m.SpareDir == "" || !poolName.MatchString(spare) {
		return ErrSpareUnfit
	}
	if p.Nice == nil {
		p.Nice = m.nice
	}
	conf, err := os.ReadFile(m.PoolFile(spare))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSpareUnfit, err)
	}
	uid, gid := poolSetting(conf, "user"), poolSetting(conf, "group")
	if !numeric(uid) || !numeric(gid) {
		return fmt.Errorf("%w: not a spare", ErrSpareUnfit)
	}
	want, err := m.spareConf(p, spare, uid, gid)
	if err != nil {
		return err
	}
	if string(want) != string(conf) {
		return fmt.Errorf("%w: other settings", ErrSpareUnfit)
	}
	return nil
}

// RemovedLoaded reports whether pool name was removed (RemovePool) and the
// running master still has it loaded: a pool of that name cannot be
// written again as a spare before the next reload.
func (m *Master) RemovedLoaded(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.removed[name]
	return ok
}

// SpareIDs returns the numeric user and group IDs spare pool spare runs
// as ("" when it is not a spare).
func (m *Master) SpareIDs(spare string) (uid, gid string) {
	conf, err := os.ReadFile(m.PoolFile(spare))
	if err != nil {
		return "", ""
	}
	uid, gid = poolSetting(conf, "user"), poolSetting(conf, "group")
	if !numeric(uid) || !numeric(gid) {
		return "", ""
	}
	return uid, gid
}

// Claim gives spare pool spare to p, a new site's pool, without a reload
// (see "Spare pools" in the package documentation). It checks that the
// spare fits (ErrSpareUnfit otherwise, before anything changed), then
// calls rename, which must make the spare's user and group p's user and
// group (the same IDs, under p's names: usermod -l, groupmod -n) and may
// find that done already, and p's directory (SiteDir), which php-fpm
// needs at its next reload; then p's pool file replaces the spare's and
// the links are made. p's pool serves at once, on Socket(p.Name).
func (m *Master) Claim(ctx context.Context, spare string, p Pool, rename func(context.Context) error) error {
	if !poolName.MatchString(p.Name) || strings.HasPrefix(p.Name, "_") {
		return fmt.Errorf("php-fpm: invalid pool name %q", p.Name)
	}
	if p.User == "" {
		return ErrSpareUnfit
	}
	if p.SlowLog == "" {
		p.SlowLog = m.SlowLog(p.Name)
	}
	if p.Nice == nil {
		p.Nice = m.nice
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.spareFits(spare, p); err != nil {
		return err
	}
	if _, err := os.Lstat(m.Socket(p.Name)); err == nil {
		return fmt.Errorf("%w: pool %s has a socket already", ErrSpareUnfit, p.Name)
	}
	if _, err := os.Stat(m.PoolFile(p.Name)); err == nil {
		return fmt.Errorf("%w: pool %s exists", ErrSpareUnfit, p.Name)
	}
	if _, ok := m.removed[p.Name]; ok {
		return fmt.Errorf("%w: pool %s is still loaded", ErrSpareUnfit, p.Name)
	}
	conf, _ := os.ReadFile(m.PoolFile(spare))
	uid, gid := poolSetting(conf, "user"), poolSetting(conf, "group")
	if err := rename(ctx); err != nil {
		return fmt.Errorf("php-fpm: claiming spare pool %s: %w", spare, err)
	}
	u, err := user.Lookup(p.User)
	if err != nil || u.Uid != uid {
		return fmt.Errorf("php-fpm: claiming spare pool %s: user %s is not the spare's (ID %s)", spare, p.User, uid)
	}
	if g, err := user.LookupGroup(p.Group); err != nil || g.Gid != gid {
		return fmt.Errorf("php-fpm: claiming spare pool %s: group %s is not the spare's (ID %s)", spare, p.Group, gid)
	}
	// What php-fpm checks of the site's pool file at its next reload.
	if err := poolPrerequisites(p); err != nil {
		return fmt.Errorf("php-fpm: claiming spare pool %s: %w", spare, err)
	}
	site, err := RenderPool(p, m.Socket(spare))
	if err != nil {
		return err
	}
	// The files first: a crash between them leaves neither (the site's
	// pool is then started as usual, with a reload) or the site's,
	// listening on the spare's socket as the loaded spare does. Not both:
	// two pools on one socket would make php-fpm refuse the configuration.
	if err := os.Remove(m.PoolFile(spare)); err != nil {
		return fmt.Errorf("php-fpm: %w", err)
	}
	if err := writeAtomic(m.PoolFile(p.Name), site, 0o644); err != nil {
		return fmt.Errorf("php-fpm: %w", err)
	}
	if m.claimed == nil {
		m.claimed = map[string]string{}
	}
	m.claimed[spare] = p.Name
	// The loaded spare's paths lead to the site's; the site's socket path
	// to the spare's socket.
	if err := relink(m.spareLink(spare), p.SiteDir); err != nil {
		return fmt.Errorf("php-fpm: %w", err)
	}
	slow := p.SlowLog
	if filepath.Dir(slow) == m.SlowLogDir() {
		slow = filepath.Base(slow)
	}
	if err := relink(m.SlowLog(spare), slow); err != nil {
		return fmt.Errorf("php-fpm: %w", err)
	}
	if err := relink(m.Socket(p.Name), filepath.Base(m.Socket(spare))); err != nil {
		return fmt.Errorf("php-fpm: %w", err)
	}
	return nil
}

// dropClaimed removes the links of the spares claimed since the last
// reload, which loaded their sites' own files instead. m.mu is held.
func (m *Master) dropClaimed() {
	for spare := range m.claimed {
		if _, err := os.Stat(m.PoolFile(spare)); err == nil {
			continue // a spare of that name again
		}
		removeLink(m.spareLink(spare))
		removeLink(m.SlowLog(spare))
	}
	clear(m.claimed)
	clear(m.unloaded)
}

// pruneSpareLinks removes what spares left that no pool file refers to:
// links below SpareDir and slow log links. Only while no master runs
// (Prepare).
func (m *Master) pruneSpareLinks() {
	for _, dir := range []string{m.SpareDir, m.SlowLogDir()} {
		if dir == "" {
			continue
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.Type() != os.ModeSymlink {
				continue
			}
			name := strings.TrimSuffix(e.Name(), ".log")
			if _, err := os.Stat(m.PoolFile(name)); err != nil {
				removeLink(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// relink makes path a symbolic link to target, replacing whatever link or
// file is there in one rename.
func relink(path, target string) error {
	tmp := path + ".link"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// removeLink removes path if it is a symbolic link.
func removeLink(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == os.ModeSymlink {
		_ = os.Remove(path)
	}
}

// numeric reports whether s is a non-empty string of decimal digits.
func numeric(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}
