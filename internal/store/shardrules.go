package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// ValidateNewShard checks what CreateShard requires (see Store): a non-nil
// shard with a Name. Its error wraps ErrInvalid and names the call ("create
// shard ..."), so it can be returned as is.
func ValidateNewShard(sh *Shard) error {
	switch {
	case sh == nil:
		return fmt.Errorf("create shard: nil shard: %w", ErrInvalid)
	case sh.Name == "":
		return fmt.Errorf("create shard: empty name: %w", ErrInvalid)
	}
	return nil
}

// PrepareShardUpdate applies the store's rules for UpdateShard (see Store)
// to next, the value a mutate function made from a copy of before, the
// stored value, as PrepareUpdate does for sites.
//
// It fails with an error wrapping ErrInvalid when next changes Name or
// CreatedAt (another location of the same instant is no change); next must
// then not be written. Otherwise it sets next's CreatedAt, ResourceVersion,
// LastHeartbeat and Usage back to before's (they belong to
// the store and to Heartbeat) and reports whether anything else changed, by
// JSON encoding. When write is true the caller sets next's ResourceVersion
// to the revision of its write.
func PrepareShardUpdate(before, next *Shard) (write bool, err error) {
	switch {
	case next.Name != before.Name:
		return false, fmt.Errorf("name cannot change: %w", ErrInvalid)
	case !next.CreatedAt.Equal(before.CreatedAt):
		return false, fmt.Errorf("created_at cannot change: %w", ErrInvalid)
	}
	// The same instant in another location is no change: keep the stored
	// value.
	next.CreatedAt = before.CreatedAt
	next.ResourceVersion = before.ResourceVersion
	next.LastHeartbeat = before.LastHeartbeat
	next.Usage = before.Usage
	same, err := jsonEqual(before, next)
	if err != nil {
		return false, err
	}
	return !same, nil
}

// EncodeShard returns the JSON encoding of sh without what implementations
// keep in columns of their own and write separately: Name, ResourceVersion,
// LastHeartbeat and Usage are left out (zero), so an UpdateShard never
// overwrites a concurrent Heartbeat.
func EncodeShard(sh *Shard) ([]byte, error) {
	c := *sh
	c.Name, c.ResourceVersion, c.LastHeartbeat, c.Usage = "", 0, nil, Usage{}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode shard %q: %w", sh.Name, err)
	}
	return b, nil
}

// EncodeUsage returns the JSON encoding of u as implementations store it.
func EncodeUsage(u Usage) ([]byte, error) {
	b, err := json.Marshal(u)
	if err != nil {
		return nil, fmt.Errorf("encode usage: %w", err)
	}
	return b, nil
}

// DecodeShard is the inverse of EncodeShard plus the columns: it decodes
// body and usage (empty usage is zero) and sets Name, ResourceVersion and
// LastHeartbeat from the arguments.
func DecodeShard(name string, rv int64, lastHeartbeat *time.Time, body, usage []byte) (*Shard, error) {
	var sh Shard
	if err := json.Unmarshal(body, &sh); err != nil {
		return nil, fmt.Errorf("decode shard %q: %w", name, err)
	}
	sh.Usage = Usage{}
	if len(usage) > 0 {
		if err := json.Unmarshal(usage, &sh.Usage); err != nil {
			return nil, fmt.Errorf("decode usage of shard %q: %w", name, err)
		}
	}
	sh.Name, sh.ResourceVersion, sh.LastHeartbeat = name, rv, lastHeartbeat
	return &sh, nil
}
