package pitr

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/backup/repo"
)

// Segment snapshots: one per site and flush, in the shard's backup
// repository (so encrypted and deduplicated like every snapshot).
const (
	// Tag marks every log segment snapshot.
	Tag = "pitr"
	// SegmentKind is SegmentMeta.Kind.
	SegmentKind = "pitr-segment"
	// SegmentVersion is the SegmentMeta version this code writes.
	SegmentVersion = 1
	// StreamName is the segment's one stream: its transactions as JSON
	// lines (Txn).
	StreamName = "transactions.jsonl"

	tagUID       = "pitr-site-uid="
	tagFirstGTID = "pitr-first-gtid="
	tagLastGTID  = "pitr-last-gtid="
	tagFirstTime = "pitr-first-time="
	tagLastTime  = "pitr-last-time="
)

// SegmentMeta is a log segment's manifest Meta.
type SegmentMeta struct {
	Kind    string `json:"kind"` // SegmentKind
	Version int    `json:"version"`
	Site    string `json:"site"`
	// UID is the site's uid (not "site_uid": a segment must never pass
	// for a site snapshot).
	UID string `json:"uid"`
	DB  string `json:"db"`
	// Log names the continuous log the segment belongs to (Status.Log).
	Log string `json:"log"`
	// Since is the position from which the shipper's log was continuous
	// when it cut this segment: every transaction of the site after Since
	// and up to End is in this segment or an earlier one with the same
	// Since.
	Since string `json:"since"`
	// End is the server's position the segment was cut at.
	End string `json:"end"`
	// Through: every transaction committed before this time is at or
	// before End (zero when the shipper could not tell).
	Through time.Time `json:"through,omitzero"`
	// FirstGTID and LastGTID are empty, and the times Through, in a
	// segment without transactions (Shipper.Flush's coverage mark).
	FirstGTID string    `json:"first_gtid"`
	LastGTID  string    `json:"last_gtid"`
	FirstTime time.Time `json:"first_time"`
	LastTime  time.Time `json:"last_time"`
	Txns      int       `json:"txns"`
}

// Segment is a log segment in a repository.
type Segment struct {
	Snapshot *repo.Snapshot
	Meta     SegmentMeta
}

// IsSegment reports whether snap is a log segment (not a site snapshot).
func IsSegment(snap *repo.Snapshot) bool { return snap.HasTag(Tag) }

// SegmentTags are the tags a segment is written with: Tag, the site's
// uid, and its first and last GTID and commit time (RFC 3339, UTC).
func SegmentTags(m SegmentMeta) []string {
	return []string{Tag, tagUID + m.UID, tagFirstGTID + m.FirstGTID, tagLastGTID + m.LastGTID,
		tagFirstTime + m.FirstTime.UTC().Format(time.RFC3339), tagLastTime + m.LastTime.UTC().Format(time.RFC3339)}
}

// SegmentTimes reads a segment snapshot's first and last commit times
// from its tags (without decoding Meta); ok is false for other snapshots.
func SegmentTimes(snap *repo.Snapshot) (first, last time.Time, ok bool) {
	if !IsSegment(snap) {
		return time.Time{}, time.Time{}, false
	}
	var err1, err2 error = errors.New("missing"), errors.New("missing")
	for _, t := range snap.Tags {
		if v, found := strings.CutPrefix(t, tagFirstTime); found {
			first, err1 = time.Parse(time.RFC3339, v)
		}
		if v, found := strings.CutPrefix(t, tagLastTime); found {
			last, err2 = time.Parse(time.RFC3339, v)
		}
	}
	return first, last, err1 == nil && err2 == nil
}

// Segments lists the log segments of site (name and uid) in r, in log
// order.
func Segments(ctx context.Context, r *repo.Repo, site, uid string) ([]Segment, error) {
	snaps, err := r.ListSnapshots(ctx, repo.SnapshotFilter{Site: site, Tags: []string{Tag, tagUID + uid}})
	if err != nil {
		return nil, fmt.Errorf("pitr: list log segments: %w", err)
	}
	var out []Segment
	for _, snap := range snaps {
		var m SegmentMeta
		if err := json.Unmarshal(snap.Meta, &m); err != nil || m.Kind != SegmentKind {
			continue
		}
		if m.Version != SegmentVersion {
			return nil, fmt.Errorf("pitr: log segment %s has version %d, want %d", snap.ID, m.Version, SegmentVersion)
		}
		if m.UID != uid {
			continue
		}
		out = append(out, Segment{Snapshot: snap, Meta: m})
	}
	// In log order: by the position each was cut at (a segment's End
	// covers its predecessors'), then by time.
	slices.SortStableFunc(out, func(a, b Segment) int {
		ea, err1 := ParsePos(a.Meta.End)
		eb, err2 := ParsePos(b.Meta.End)
		if err1 == nil && err2 == nil {
			ab, ba := ea.CoversPos(eb), eb.CoversPos(ea)
			switch {
			case ab && !ba:
				return 1
			case ba && !ab:
				return -1
			}
		}
		return a.Snapshot.Time.Compare(b.Snapshot.Time)
	})
	return out, nil
}

// encodeTxns writes txns as JSON lines.
func encodeTxns(txns []Txn) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for i := range txns {
		if err := enc.Encode(&txns[i]); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// readTxns calls fn with each transaction of a segment stream; fn returns
// false to stop.
func readTxns(rd io.Reader, fn func(*Txn) (bool, error)) error {
	br := bufio.NewReaderSize(rd, 1<<20)
	dec := json.NewDecoder(br)
	for {
		var t Txn
		err := dec.Decode(&t)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("pitr: log segment: %w", err)
		}
		more, err := fn(&t)
		if err != nil || !more {
			return err
		}
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
