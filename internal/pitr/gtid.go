package pitr

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// GTID is one MariaDB global transaction id: domain-server-sequence.
type GTID struct {
	Domain uint32
	Server uint32
	Seq    uint64
}

// String formats g as MariaDB does ("0-1-42").
func (g GTID) String() string { return fmt.Sprintf("%d-%d-%d", g.Domain, g.Server, g.Seq) }

// ParseGTID parses "domain-server-sequence".
func ParseGTID(s string) (GTID, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 3 {
		return GTID{}, fmt.Errorf("gtid %q: want domain-server-sequence", s)
	}
	d, err1 := strconv.ParseUint(parts[0], 10, 32)
	sv, err2 := strconv.ParseUint(parts[1], 10, 32)
	q, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return GTID{}, fmt.Errorf("gtid %q: want domain-server-sequence", s)
	}
	return GTID{Domain: uint32(d), Server: uint32(sv), Seq: q}, nil
}

// Pos is a MariaDB GTID position (@@gtid_binlog_pos): the last
// transaction of each replication domain. A transaction is covered by a
// position when the position's sequence number in its domain is at least
// the transaction's (MariaDB numbers a domain's transactions in binlog
// order, whichever server wrote them).
type Pos map[uint32]GTID

// ParsePos parses a comma-separated GTID list ("" is the empty position).
func ParsePos(s string) (Pos, error) {
	p := Pos{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		g, err := ParseGTID(f)
		if err != nil {
			return nil, err
		}
		if old, ok := p[g.Domain]; !ok || g.Seq > old.Seq {
			p[g.Domain] = g
		}
	}
	return p, nil
}

// String formats p as MariaDB does, domains in order.
func (p Pos) String() string {
	doms := make([]uint32, 0, len(p))
	for d := range p {
		doms = append(doms, d)
	}
	slices.Sort(doms)
	parts := make([]string, len(doms))
	for i, d := range doms {
		parts[i] = p[d].String()
	}
	return strings.Join(parts, ",")
}

// Covers reports whether transaction g is at or before p.
func (p Pos) Covers(g GTID) bool {
	cur, ok := p[g.Domain]
	return ok && cur.Seq >= g.Seq
}

// CoversPos reports whether every transaction q covers is covered by p.
func (p Pos) CoversPos(q Pos) bool {
	for _, g := range q {
		if !p.Covers(g) {
			return false
		}
	}
	return true
}

// Advance records g as done.
func (p Pos) Advance(g GTID) {
	if cur, ok := p[g.Domain]; !ok || g.Seq >= cur.Seq {
		p[g.Domain] = g
	}
}

// Clone copies p.
func (p Pos) Clone() Pos {
	q := make(Pos, len(p))
	for d, g := range p {
		q[d] = g
	}
	return q
}
