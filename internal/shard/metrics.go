package shard

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/replwatch"
	"github.com/aipress/aipress/internal/site"
)

// SiteRef is a site of the shard, by name, with its resource names.
type SiteRef struct {
	Name string
	Names
}

// setSiteRefs remembers the sites of a Converge pass for SiteRefs.
func (s *Shard) setSiteRefs(sites []site.Site) {
	refs := make([]SiteRef, 0, len(sites))
	for _, st := range sites {
		if st.Metadata.UID == "" {
			continue
		}
		refs = append(refs, SiteRef{Name: st.Metadata.Name, Names: s.NamesFor(st.Metadata.UID)})
	}
	c := siteCounts{known: true}
	for i := range sites {
		if sites[i].Status.Shard == s.cfg.Name {
			c.sites++
			if sites[i].Status.Phase == site.PhaseReady {
				c.serving++
			}
		}
	}
	s.mu.Lock()
	s.refs = refs
	s.counts = c
	s.mu.Unlock()
}

// siteCounts are the sites placed on the shard and those of them serving,
// as of the last Converge pass (Usage); known once a pass has listed them.
type siteCounts struct {
	sites, serving int
	known          bool
}

// SiteRefs returns the shard's sites as of its last convergence pass.
func (s *Shard) SiteRefs() []SiteRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SiteRef(nil), s.refs...)
}

// diskRetry is how soon SiteDisk walks again for a site whose files
// measured 0 bytes (measured while it was being created).
const diskRetry = time.Minute

// SiteDisk returns the bytes of each site's own files by site ID (Names.ID)
// as last measured, and starts measuring again in the background (unless
// a walk runs) when the last walk is DiskInterval old, when a site has no
// figure yet (a new site, or the first walk ran before the shard's first
// convergence pass), or when a site's figure is 0 (measured while it was
// being created) and the last walk is diskRetry old. A site's directory
// holds its wp-content and generated files; files with more than one hard
// link (the shared WordPress core) belong to the shard, not to one site.
// The first call returns an empty map.
func (s *Shard) SiteDisk() map[string]int64 {
	s.mu.Lock()
	since := s.cfg.Clock().Sub(s.siteDiskAt)
	due := s.siteDisk == nil || since >= DiskInterval
	for _, r := range s.refs {
		if n, ok := s.siteDisk[r.ID]; !ok || (n == 0 && since >= diskRetry) {
			due = true
			break
		}
	}
	due = due && !s.siteDiskBusy
	if due {
		s.siteDiskAt = s.cfg.Clock()
		s.siteDiskBusy = true
		if s.siteDisk == nil {
			s.siteDisk = map[string]int64{}
		}
	}
	out := make(map[string]int64, len(s.siteDisk))
	for k, v := range s.siteDisk {
		out[k] = v
	}
	refs := s.refs
	s.mu.Unlock()
	if due {
		go func() {
			m := make(map[string]int64, len(refs))
			for _, r := range refs {
				m[r.ID] = ownFilesSize(r.Dir)
			}
			s.mu.Lock()
			s.siteDisk = m
			s.siteDiskBusy = false
			s.mu.Unlock()
		}()
	}
	return out
}

// ownFilesSize is the allocated size of the regular files under dir that
// have a single link.
func ownFilesSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		size := info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			if st.Nlink > 1 {
				return nil
			}
			size = min(size, st.Blocks*512)
		}
		total += size
		return nil
	})
	return total
}

// SiteMeasure is what the shard measures of one site for its usage
// records (Measure). A nil figure was not measured.
type SiteMeasure struct {
	// DBBytes is its database's data and index bytes
	// (information_schema.TABLES).
	DBBytes *int64
	// DBStatements is what its database accounts (the one in use and the
	// other of a password rotation) ran since the database server
	// started (information_schema.USER_STATISTICS; nil without userstat,
	// e.g. on an external server).
	DBStatements *int64
	// FilesBytes is its own files' bytes as SiteDisk measured them last.
	FilesBytes *int64
}

// Measurement is Measure's answer: the sites by name, and the database
// server's uptime in seconds (a counter that went back with it means the
// server restarted and its statement counters began again).
type Measurement struct {
	DBUptime float64
	Sites    map[string]SiteMeasure
}

// Measure measures the shard's sites (as of its last convergence pass) for
// their usage records: a few information_schema queries for all of them,
// and the file sizes of SiteDisk (which starts a new walk when the last is
// DiskInterval old). A site whose figures could not be read has nil ones;
// err says why (what was read is returned with it).
func (s *Shard) Measure(ctx context.Context) (Measurement, error) {
	refs := s.SiteRefs()
	m := Measurement{Sites: make(map[string]SiteMeasure, len(refs))}
	disk := s.SiteDisk()
	var stats *mariadb.Statistics
	var err error
	if s.db != nil {
		stats, err = s.db.Statistics(ctx, NamePrefix(s.cfg.Name))
		if err == nil && !stats.Up {
			err = errors.New("the database server did not answer")
		}
	} else {
		err = errors.New("no database server yet")
	}
	if stats != nil {
		m.DBUptime = stats.Uptime
	}
	for _, r := range refs {
		var sm SiteMeasure
		if n, ok := disk[r.ID]; ok {
			sm.FilesBytes = &n
		}
		if stats != nil && stats.SchemaBytes != nil {
			n := stats.SchemaBytes[r.DB] // absent: no table yet
			sm.DBBytes = &n
		}
		if stats != nil && stats.Users != nil {
			var n int64
			for _, user := range siteDBUsers(r.Names) {
				n += int64(stats.Users[user].Statements)
			}
			sm.DBStatements = &n
		}
		m.Sites[r.Name] = sm
	}
	if err != nil {
		return m, fmt.Errorf("measure sites: %w", err)
	}
	return m, nil
}

// Dir is the shard's data directory (its sites, MariaDB's and php-fpm's
// files): the file system whose free space the shard's metrics report.
func (s *Shard) Dir() string { return s.cfg.Dir }

// ReplicaStatus returns the replica watch's latest observation; ok is
// false when the shard has no read replica. A zero Status (ObservedAt
// zero) means the watch has observed nothing yet, or is restarting.
func (s *Shard) ReplicaStatus() (st replwatch.Status, ok bool) {
	if s.replicaBackend() == nil {
		return replwatch.Status{}, false
	}
	if w := s.tier.gate.w.Load(); w != nil {
		st = w.Status()
	}
	return st, true
}
