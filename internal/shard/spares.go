package shard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/phpfpm"
	"github.com/aipress/aipress/internal/site"
)

// Spare pools (phpfpm's "Spare pools"): a new site's pool starts with a
// php-fpm reload, which pauses every site of the shard for the longest
// request in flight and empties OPcache, and which was the longest step of
// a creation. So the shard keeps Config.Spares pools ready, each with a
// Unix user of its own (named NamePrefix + "s" + 11 hex digits, home below
// the sites directory: the firewall covers it like a site's, and orphan
// collection, which takes 12 hex digits, never does), and a new site takes
// one: its user is renamed into the site's (usermod -l, groupmod -n: the
// same IDs) and the pool serves the site at once. Spares are made again at
// the end of a pass, Config.SpareDelay after the last new site went Ready
// (its first request must not meet the reload), or with a reload made
// anyway (a new site that found no spare, changed pools).
//
// A spare is made with the pool settings of the last site created on the
// shard (a plan's), kept in spare-pool.json in the shard's directory;
// one that no longer fits them, or whose user is gone, is removed. Before
// the shard's first new site, none are made.

// DefaultSpares is Config.Spares's default.
const DefaultSpares = 2

// DefaultSpareDelay is Config.SpareDelay's default: longer than a new
// site's first request takes, and than the time between two creations
// of a burst, which get their spares with the reload of every third site
// instead. A pass that makes spares (useradd, a reload) holds up a
// creation that arrives meanwhile, passes running one at a time: with
// 500 ms, bench-provision's 100 sites on 2 shards (one every ≈ 0.7 s per
// shard) could meet it.
const DefaultSpareDelay = 2 * time.Second

// spareHome is the home directory spare's user is given (never made):
// below the sites directory, so that the shard's site users include it.
func (s *Shard) spareHome(spare string) string { return filepath.Join(s.sitesDir(), spare) }

// isSpare reports whether name (a pool's or Unix user's) is one of this
// shard's spares.
func (s *Shard) isSpare(name string) bool {
	rest, ok := strings.CutPrefix(name, s.prefix+"s")
	if !ok || len(rest) != 11 {
		return false
	}
	return strings.Trim(rest, "0123456789abcdef") == ""
}

func (s *Shard) sparesOn() bool { return s.cfg.Spares > 0 && os.Geteuid() == 0 }

// spareNames lists the spare pools of the master's pool directory.
func (s *Shard) spareNames() []string {
	pools, _ := s.fpm.Pools()
	var out []string
	for _, p := range pools {
		if s.isSpare(p) {
			out = append(out, p)
		}
	}
	return out
}

// claimSpare gives site st a spare pool (n's user becomes the spare's),
// and reports whether it did. It is tried only on a new site's first way
// to Ready whose user does not exist yet; a site that gets none is made
// as before.
func (s *Shard) claimSpare(ctx context.Context, st *site.Site, n Names) bool {
	if !s.sparesOn() {
		return false
	}
	p := s.poolFor(st, n, 0)
	s.noteSpareTemplate(p)
	if lookupUID(n.Unix) >= 0 {
		return false
	}
	for _, spare := range s.spareNames() {
		err := s.fpm.Claim(ctx, spare, p, func(ctx context.Context) error {
			// The site's directory first, for the spare's group (the
			// site's to be): a reload of php-fpm for another reason must
			// never find the working directory of a pool file missing.
			if _, gid := lookupIDs(spare); gid > 0 {
				if err := ensureDir(n.Dir, 0o750, 0, gid); err != nil {
					return err
				}
			}
			return renameUnixUser(ctx, spare, n.Unix, n.Dir)
		})
		if err == nil {
			return true
		}
		if !errors.Is(err, phpfpm.ErrSpareUnfit) {
			s.siteLog(st).Warn("claiming a spare pool failed: starting the site's own", "spare", spare, "err", err)
			return false
		}
	}
	return false
}

// spareTemplateFile keeps the pool settings spares are made with.
func (s *Shard) spareTemplateFile() string { return filepath.Join(s.cfg.Dir, "spare-pool.json") }

// noteSpareTemplate makes p's settings (p is a new site's pool) those of
// the next spares, and keeps them for the shard's next start.
func (s *Shard) noteSpareTemplate(p phpfpm.Pool) {
	p.Name, p.User, p.Group, p.SiteDir, p.SlowLog = "", "", "", "", ""
	s.spareMu.Lock()
	defer s.spareMu.Unlock()
	if s.spareTpl != nil && reflect.DeepEqual(*s.spareTpl, p) {
		return
	}
	s.spareTpl = &p
	if b, err := json.Marshal(p); err == nil {
		if err := writeIfChanged(s.spareTemplateFile(), b, 0o600, 0, 0); err != nil {
			s.log.Warn("keeping the spare pools' settings", "err", err)
		}
	}
}

// spareTemplate is the settings spares are made with (nil: no site was
// created on the shard yet). s.spareMu is held.
func (s *Shard) spareTemplate() *phpfpm.Pool {
	if s.spareTpl == nil && !s.spareLoaded {
		s.spareLoaded = true
		var p phpfpm.Pool
		if b, err := os.ReadFile(s.spareTemplateFile()); err == nil && json.Unmarshal(b, &p) == nil {
			s.spareTpl = &p
		}
	}
	return s.spareTpl
}

// newSiteReady notes that a new site went Ready: spares are made again
// only Config.SpareDelay later, so that its first request does not meet
// the reload.
func (s *Shard) newSiteReady() {
	s.spareMu.Lock()
	s.spareLastNew = s.cfg.Clock()
	s.spareMu.Unlock()
}

// keepSpares keeps Config.Spares spares: it removes those that no longer
// fit (tidySpares), makes their users at once (useradd pauses nothing),
// and writes the pools of those without one for the pass's ApplyPending
// to start: at once when the pass reloads anyway (reloading), else once
// Config.SpareDelay has passed since the last new site went Ready (a pass
// is asked for then). A shard without sites (sites false) keeps none, as
// it keeps no template database: nothing of it is left once its last
// site is gone.
func (s *Shard) keepSpares(ctx context.Context, reloading, sites bool) error {
	if os.Geteuid() != 0 {
		return nil
	}
	want := max(s.cfg.Spares, 0)
	if !sites {
		want = 0
	}
	tpl, poolless, err := s.tidySpares(ctx, want)
	if tpl == nil || len(poolless) == 0 {
		return err
	}
	s.spareMu.Lock()
	last := s.spareLastNew
	s.spareMu.Unlock()
	if wait := last.Add(s.cfg.SpareDelay).Sub(s.cfg.Clock()); wait > 0 && !reloading {
		s.spareMu.Lock()
		if s.spareTimer == nil {
			s.spareTimer = time.AfterFunc(wait, s.Wake)
		} else {
			s.spareTimer.Reset(wait)
		}
		s.spareMu.Unlock()
		return err
	}
	return errors.Join(err, s.writeSpares(*tpl, poolless))
}

// sparesBeside writes the pools of the spares that have none before a new
// site's pool is started with a reload, which then starts them too.
func (s *Shard) sparesBeside() {
	s.spareMu.Lock()
	tpl := s.spareTemplate()
	s.spareMu.Unlock()
	if tpl == nil {
		return
	}
	var poolless []string
	pools := map[string]bool{}
	for _, p := range s.spareNames() {
		pools[p] = true
	}
	for _, u := range shardUnixUsers(s.sitesDir()) {
		if s.isSpare(u) && !pools[u] && !s.fpm.RemovedLoaded(u) {
			poolless = append(poolless, u)
		}
	}
	if err := s.writeSpares(*tpl, poolless); err != nil {
		s.log.Warn("writing spare pools", "err", err)
	}
}

// writeSpares writes spare pools with settings tpl for the spare users
// names.
func (s *Shard) writeSpares(tpl phpfpm.Pool, names []string) error {
	if len(names) == 0 {
		return nil
	}
	var ps []phpfpm.Pool
	for _, name := range names {
		p := tpl
		p.Name, p.User, p.Group = name, name, name
		ps = append(ps, p)
	}
	return s.fpm.WriteSpares(ps)
}

// tidySpares removes the spare pools that no longer fit the settings of
// the last new site (or whose user is gone) and the spare users beyond
// want, and makes spare users up to it. It returns the settings
// (nil: no new site on the shard yet, then no user is made) and the
// spare users without a pool.
func (s *Shard) tidySpares(ctx context.Context, want int) (*phpfpm.Pool, []string, error) {
	s.spareMu.Lock()
	tpl := s.spareTemplate()
	s.spareMu.Unlock()
	var errs []error
	pooled := map[string]bool{}
	for _, spare := range s.spareNames() {
		uid, _ := s.fpm.SpareIDs(spare)
		ok := uid != "" && strconv.Itoa(lookupUID(spare)) == uid && len(pooled) < want
		if ok && tpl != nil {
			ok = s.fpm.SpareMatches(spare, *tpl)
		}
		if ok {
			pooled[spare] = true
			continue
		}
		s.log.Info("removing a spare pool", "spare", spare)
		if err := s.fpm.RemovePool(ctx, spare); err != nil {
			errs = append(errs, err)
		}
	}
	// The users: those with a pool first, then others up to want (a
	// spare made while a claim took another, one whose pool was removed
	// above); the rest go.
	users := len(pooled)
	var poolless []string
	for _, u := range shardUnixUsers(s.sitesDir()) {
		if !s.isSpare(u) || pooled[u] {
			continue
		}
		if users < want && tpl != nil && !s.fpm.RemovedLoaded(u) {
			users++
			poolless = append(poolless, u)
			continue
		}
		if err := s.removeSiteUser(ctx, Names{Unix: u, Dir: s.spareHome(u)}); err != nil {
			errs = append(errs, err)
		}
	}
	if tpl == nil {
		return nil, nil, errors.Join(errs...)
	}
	for ; users < want; users++ {
		name, err := s.newSpareName()
		if err != nil {
			return tpl, poolless, errors.Join(append(errs, err)...)
		}
		if _, _, err := s.ensureSiteUser(ctx, Names{Unix: name, Dir: s.spareHome(name)}); err != nil {
			return tpl, poolless, errors.Join(append(errs, fmt.Errorf("spare pool: %w", err))...)
		}
		poolless = append(poolless, name)
	}
	return tpl, poolless, errors.Join(errs...)
}

// newSpareName is a fresh spare name: NamePrefix, "s", 11 hex digits.
func (s *Shard) newSpareName() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return s.prefix + "s" + hex.EncodeToString(b)[:11], nil
}

// renameUnixUser makes spare's user and group site's (same IDs, home
// home). Done already (a claim retried after a crash), it does nothing.
func renameUnixUser(ctx context.Context, spare, site, home string) error {
	if lookupUID(spare) >= 0 {
		if out, err := shadowTool(ctx, "usermod", "--login", site, "--home", home, spare); err != nil {
			return fmt.Errorf("usermod %s: %w: %s", spare, err, strings.TrimSpace(string(out)))
		}
	}
	if groupExists(spare) && !groupExists(site) {
		if out, err := shadowTool(ctx, "groupmod", "--new-name", site, spare); err != nil {
			return fmt.Errorf("groupmod %s: %w: %s", spare, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// groupExists reports whether group name exists.
func groupExists(name string) bool {
	_, err := user.LookupGroup(name)
	return err == nil
}
