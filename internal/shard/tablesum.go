package shard

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"sort"
)

// tableSums computes a checksum of every table's rows from a mariadb-dump
// stream as it passes through (it is an io.Writer for an io.TeeReader or a
// MultiWriter): the SHA-256 of the table's INSERT lines, in dump order. A
// table whose CREATE TABLE appears but has no rows gets the hash of
// nothing. Dumps of the same rows are byte-identical (mariadb-dump writes
// rows in primary-key order for InnoDB, with fixed options), so a database
// restored from a snapshot and dumped again must give the same sums: that is
// what verify-restore compares against the snapshot's tables.json.
//
// It keeps at most one line's first bytes (headLen) in memory, never the
// dump.
type tableSums struct {
	sums map[string]hash.Hash
	cur  hash.Hash // the table whose INSERT line is being hashed; nil: skip
	head []byte    // the current line's first bytes while undecided
	mid  bool      // inside a line whose kind is decided
}

const headLen = 256

func newTableSums() *tableSums { return &tableSums{sums: map[string]hash.Hash{}} }

var (
	insertPrefix = []byte("INSERT INTO `")
	createPrefix = []byte("CREATE TABLE `")
)

// Write implements io.Writer.
func (t *tableSums) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if t.mid {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				if t.cur != nil {
					t.cur.Write(p)
				}
				return n, nil
			}
			if t.cur != nil {
				t.cur.Write(p[:i+1])
			}
			p = p[i+1:]
			t.mid, t.cur = false, nil
			continue
		}
		// Collect the line's head until it is long enough to decide.
		i := bytes.IndexByte(p, '\n')
		take := len(p)
		if i >= 0 {
			take = i + 1
		}
		if room := headLen - len(t.head); take > room {
			take = room
		}
		t.head = append(t.head, p[:take]...)
		p = p[take:]
		if len(t.head) < headLen && t.head[len(t.head)-1] != '\n' {
			continue // need more of this line
		}
		t.decide()
	}
	return n, nil
}

// decide classifies the line whose head is buffered and hashes the head
// if it is a table's row data.
func (t *tableSums) decide() {
	line := t.head
	t.head = t.head[:0]
	ended := line[len(line)-1] == '\n'
	var h hash.Hash
	switch {
	case bytes.HasPrefix(line, insertPrefix):
		if name, ok := quotedName(line[len(insertPrefix)-1:]); ok {
			h = t.table(name)
		}
	case bytes.HasPrefix(line, createPrefix):
		if name, ok := quotedName(line[len(createPrefix)-1:]); ok {
			t.table(name)
		}
	}
	if h != nil {
		h.Write(line)
	}
	if !ended {
		t.mid, t.cur = true, h
	}
}

func (t *tableSums) table(name string) hash.Hash {
	h := t.sums[name]
	if h == nil {
		h = sha256.New()
		t.sums[name] = h
	}
	return h
}

// quotedName reads `name` at the start of b.
func quotedName(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '`' {
		return "", false
	}
	end := bytes.IndexByte(b[1:], '`')
	if end <= 0 {
		return "", false
	}
	return string(b[1 : 1+end]), true
}

// Sums returns every table's hex SHA-256.
func (t *tableSums) Sums() map[string]string {
	out := make(map[string]string, len(t.sums))
	for k, h := range t.sums {
		out[k] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

// diffSums lists the tables whose sums differ between want and got
// (missing on either side included), sorted.
func diffSums(want, got map[string]string) []string {
	var out []string
	for k, v := range want {
		if got[k] != v {
			out = append(out, k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

var _ io.Writer = (*tableSums)(nil)
