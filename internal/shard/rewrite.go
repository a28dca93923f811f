package shard

import (
	"context"
	"fmt"

	"github.com/aipress/aipress/internal/searchreplace"
)

// rewriteURLs rewrites the site URL from → to everywhere in database db
// (serialisation-safe, wp-cli search-replace --precise semantics, guid
// kept; see package searchreplace). Nothing else writes to db meanwhile:
// it is a site being created from a snapshot, not serving yet.
func (s *Shard) rewriteURLs(ctx context.Context, db, from, to string) error {
	conn, err := s.db.OpenRoot(db)
	if err != nil {
		return err
	}
	defer conn.Close()
	rep, err := searchreplace.RewriteDatabase(ctx, conn, "wp_", from, to, searchreplace.Options{})
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", db, err)
	}
	for _, w := range rep.Warnings {
		s.log.Warn("URL rewrite", "database", db, "warning", w)
	}
	s.log.Info("URLs rewritten", "database", db, "from", from, "to", to, "rows", rep.RowsChanged, "cells", rep.CellsChanged)
	return nil
}
