package shard

import (
	"io/fs"
	"path/filepath"
	"syscall"

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
	s.mu.Lock()
	s.refs = refs
	s.mu.Unlock()
}

// SiteRefs returns the shard's sites as of its last convergence pass.
func (s *Shard) SiteRefs() []SiteRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SiteRef(nil), s.refs...)
}

// SiteDisk returns the bytes of each site's own files by site ID (Names.ID)
// as last measured, and starts measuring again in the background when the
// last walk is DiskInterval old: a site's directory holds its wp-content
// and generated files; files with more than one hard link (the shared
// WordPress core) belong to the shard, not to one site. The first call
// returns an empty map.
func (s *Shard) SiteDisk() map[string]int64 {
	s.mu.Lock()
	due := s.siteDisk == nil || s.cfg.Clock().Sub(s.siteDiskAt) >= DiskInterval
	if due {
		s.siteDiskAt = s.cfg.Clock()
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
