package shard

// OPcache's file cache for the shard's cores (package phpfpm,
// filecache.go): each core's tree is compiled into it once, by root, in the
// background, the first time a site of the shard uses that core. From then
// on a pool whose OPcache memory is empty — the master re-executed for
// another site's pool, or the site is new — loads WordPress compiled
// instead of compiling it.

import (
	"context"
	"path/filepath"
	"time"

	"github.com/aipress/aipress/internal/wordpress"
)

// fillOPcache compiles core into the file cache in the background unless
// that is done or under way (or the shard is not running).
func (s *Shard) fillOPcache(core *wordpress.Core) {
	dir := filepath.Dir(core.Tree) // the tree and its content skeleton
	s.tpl.Lock()
	defer s.tpl.Unlock()
	if s.tplCtx == nil || s.opcacheFilled[dir] {
		return
	}
	if s.opcacheFilled == nil {
		s.opcacheFilled = map[string]bool{}
	}
	s.opcacheFilled[dir] = true
	bg := s.tplCtx
	s.tplWG.Add(1)
	go func() {
		defer s.tplWG.Done()
		ctx, cancel := context.WithTimeout(bg, 5*time.Minute)
		defer cancel()
		t0 := time.Now()
		n, err := s.fpm.FillFileCache(ctx, wordpress.PHPCLI, dir)
		if err != nil {
			if bg.Err() == nil {
				s.log.Warn("OPcache file cache not filled: pools compile WordPress after every reload", "core", core.Version, "err", err)
			}
			s.tpl.Lock()
			delete(s.opcacheFilled, dir) // the next site tries again
			s.tpl.Unlock()
			return
		}
		if n > 0 {
			s.log.Info("OPcache file cache filled", "core", core.Version, "scripts", n, "took", time.Since(t0).Round(time.Millisecond))
		}
	}()
}
