package store

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/aipress/aipress/internal/site"
)

// EncodeMove returns the JSON encoding of m as implementations store it:
// "null" for a nil move.
func EncodeMove(m *site.Move) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode move: %w", err)
	}
	return b, nil
}

// DecodeMove is the inverse of EncodeMove; name (the site's) names the row
// in its errors. Empty input and "null" give a nil move.
func DecodeMove(name string, b []byte) (*site.Move, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m *site.Move
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode move of %q: %w", name, err)
	}
	return m, nil
}

// MoveShards returns the source and target of s's move while it is active
// (site.Move.Active), else two empty strings. Implementations keep them in
// indexed columns so that a shard filter matches every shard of
// site.Site.Shards.
func MoveShards(s *site.Site) (source, target string) {
	if !s.Move.Active() {
		return "", ""
	}
	return s.Move.Source, s.Move.Target
}

// LeftShards returns the shards before holds and after does not
// (site.Site.Shards), in before's order: the shards an update of before to
// after records tombstones for.
func LeftShards(before, after *site.Site) []string {
	now := after.Shards()
	var left []string
	for _, sh := range before.Shards() {
		if !slices.Contains(now, sh) {
			left = append(left, sh)
		}
	}
	return left
}

// UpdateTombstones returns the tombstones an update of before to after
// records at revision rev (see Store): one per shard the site left.
func UpdateTombstones(before, after *site.Site, rev int64) []Tombstone {
	var out []Tombstone
	for _, sh := range LeftShards(before, after) {
		out = append(out, Tombstone{Name: before.Metadata.Name, UID: before.Metadata.UID, Shard: sh, Revision: rev})
	}
	return out
}

// DeleteTombstones returns the tombstones the deletion of s records at
// revision rev (see Store): one per shard s held, all Deleted, or a single
// one with an empty Shard when s held none, so that a watcher of all sites
// learns of every deletion.
func DeleteTombstones(s *site.Site, rev int64) []Tombstone {
	shards := s.Shards()
	if len(shards) == 0 {
		shards = []string{""}
	}
	out := make([]Tombstone, 0, len(shards))
	for _, sh := range shards {
		out = append(out, Tombstone{Name: s.Metadata.Name, UID: s.Metadata.UID, Shard: sh, Revision: rev, Deleted: true})
	}
	return out
}

// ValidateListOptions checks the filters of ListSites (see Store): Shard and
// Unplaced together give an error wrapping ErrInvalid.
func ValidateListOptions(opts ListOptions) error {
	if opts.Shard != "" && opts.Unplaced {
		return fmt.Errorf("list sites: shard and unplaced filters together: %w", ErrInvalid)
	}
	return nil
}

// CheckSince checks Changes' since against the prune horizon (the largest
// before PruneTombstones was given, 0 if never): since < 0 gives an error
// wrapping ErrInvalid, since < horizon one wrapping ErrExpired. Its errors
// name the call ("changes ..."), so they can be returned as is.
func CheckSince(since, horizon int64) error {
	switch {
	case since < 0:
		return fmt.Errorf("changes since %d: negative revision: %w", since, ErrInvalid)
	case since < horizon:
		return fmt.Errorf("changes since %d: tombstones before %d were pruned: %w", since, horizon, ErrExpired)
	}
	return nil
}

// CutChanges merges the sites and shards a Changes call read, and applies
// the page limit (already passed through PageLimit). sites and shards must
// each be ordered by ResourceVersion and hold the first limit+1 (or more)
// items written after since, or all there are. Sites and shards share the
// revision counter, so their resource versions never collide.
//
// When there are more than limit items together, CutChanges keeps the
// limit oldest, reports more, and returns as upTo the ResourceVersion of the
// last one kept: the caller then returns only the tombstones up to upTo and
// sets ChangeList.Revision to it. Otherwise it keeps everything, and upTo is
// current, the store revision of the snapshot the items were read from.
func CutChanges(sites []site.Site, shards []Shard, limit int, current int64) (outSites []site.Site, outShards []Shard, upTo int64, more bool) {
	if len(sites)+len(shards) <= limit {
		return sites, shards, current, false
	}
	i, j := 0, 0
	var last int64
	for i+j < limit {
		// Take the older of the two heads.
		if j >= len(shards) || (i < len(sites) && sites[i].Metadata.ResourceVersion < shards[j].ResourceVersion) {
			last = sites[i].Metadata.ResourceVersion
			i++
		} else {
			last = shards[j].ResourceVersion
			j++
		}
	}
	return sites[:i], shards[:j], last, true
}
