package sitefw

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Names inside a Firewall's table.
const (
	setUIDs      = "site_uids"
	setLoopPorts = "loopback_ports"
	chainOutput  = "output"
	chainSite    = "site"
	chainRefuse  = "refuse"
)

// Options configure a Firewall.
type Options struct {
	// Table is the name of the firewall's own nftables table (family
	// inet): ProcessTable for a shard process, a fixed name for an init
	// step.
	Table string
	// NetNS, if not zero, is an open file descriptor of the network
	// namespace to act in (tests); zero: the caller's.
	NetNS int
}

// Firewall is one nftables table of site-user rules. Its methods are safe
// for concurrent use.
type Firewall struct {
	table string
	mu    sync.Mutex
	conn  *nftables.Conn
	uids  map[uint32]bool // the set's elements as last written
}

// Open connects to nftables; nothing is written before Apply.
func Open(opts Options) (*Firewall, error) {
	if opts.Table == "" || len(opts.Table) > 200 {
		return nil, fmt.Errorf("site firewall: bad table name %q", opts.Table)
	}
	copts := []nftables.ConnOption{nftables.AsLasting()}
	if opts.NetNS != 0 {
		copts = append(copts, nftables.WithNetNSFd(opts.NetNS))
	}
	c, err := nftables.New(copts...)
	if err != nil {
		return nil, fmt.Errorf("site firewall: netlink: %w", err)
	}
	return &Firewall{table: opts.Table, conn: c, uids: map[uint32]bool{}}, nil
}

// Table is the name of the firewall's table.
func (f *Firewall) Table() string { return f.table }

func (f *Firewall) tbl() *nftables.Table {
	return &nftables.Table{Name: f.table, Family: nftables.TableFamilyINet}
}

func (f *Firewall) uidSet() *nftables.Set {
	return &nftables.Set{Table: f.tbl(), Name: setUIDs, KeyType: nftables.TypeUID, KeyByteOrder: binaryutil.NativeEndian}
}

// Apply writes the policy: the table is created or replaced whole in one
// transaction, so applying the same policy again changes nothing and there
// is never a moment without rules. Tables of dead shard processes are
// collected first.
func (f *Firewall) Apply(p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.collectDead(); err != nil {
		return err
	}
	c := f.conn
	t := f.tbl()
	// Create-if-missing, delete, create: the kernel's transaction makes
	// the swap atomic.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)

	uids := f.uidSet()
	var elems []nftables.SetElement
	for _, u := range sortedUnique(p.UIDs) {
		elems = append(elems, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(u)})
	}
	if err := c.AddSet(uids, elems); err != nil {
		return fmt.Errorf("site firewall: %w", err)
	}
	ports := &nftables.Set{Table: t, Name: setLoopPorts, KeyType: nftables.TypeInetService, Constant: true}
	var pe []nftables.SetElement
	for _, port := range sortedUnique(p.LoopbackPorts) {
		pe = append(pe, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(port)})
	}
	if err := c.AddSet(ports, pe); err != nil {
		return fmt.Errorf("site firewall: %w", err)
	}

	out := c.AddChain(&nftables.Chain{Name: chainOutput, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityMangle})
	site := c.AddChain(&nftables.Chain{Name: chainSite, Table: t})
	refuse := c.AddChain(&nftables.Chain{Name: chainRefuse, Table: t})

	// output: site users go to the site chain.
	add := func(ch *nftables.Chain, ex ...expr.Any) { c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: ex}) }
	jumpSite := &expr.Verdict{Kind: expr.VerdictJump, Chain: chainSite}
	add(out, &expr.Meta{Key: expr.MetaKeySKUID, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: uids.Name, SetID: uids.ID}, jumpSite)
	for _, r := range p.Ranges {
		// A range compares numbers: the host-order UID is turned big-endian
		// first, as nft does for `meta skuid A-B`.
		add(out, &expr.Meta{Key: expr.MetaKeySKUID, Register: 1},
			&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
			&expr.Range{Op: expr.CmpOpEq, Register: 1,
				FromData: binaryutil.BigEndian.PutUint32(r.First), ToData: binaryutil.BigEndian.PutUint32(r.Last)},
			jumpSite)
	}

	// site: established, allowed destinations, this machine, metadata,
	// private networks.
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	toRefuse := &expr.Verdict{Kind: expr.VerdictGoto, Chain: chainRefuse}
	add(site, &expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		accept)
	for _, d := range p.Allow {
		for _, proto := range []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
			ex := daddrMatch(d.Prefix)
			ex = append(ex,
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(d.Port)},
				accept)
			add(site, ex...)
		}
	}
	onLoopback := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname("lo")},
	}
	add(site, append(slices.Clone(onLoopback),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
		accept)...)
	add(site, append(slices.Clone(onLoopback), toRefuse)...)
	refused := slices.Clone(MetadataPrefixes)
	if p.DenyPrivate {
		refused = append(refused, PrivatePrefixes...)
	}
	for _, pr := range refused {
		add(site, append(daddrMatch(pr), toRefuse)...)
	}

	// refuse: a TCP reset, else ICMP administratively prohibited.
	add(refuse, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
	add(refuse, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED})

	if err := c.Flush(); err != nil {
		return fmt.Errorf("site firewall: apply table %s: %w", f.table, err)
	}
	f.uids = map[uint32]bool{}
	for _, u := range p.UIDs {
		f.uids[u] = true
	}
	return nil
}

// AddUIDs adds site users to the table's set (after Apply). Call it before
// anything runs as a new user. Root is refused.
func (f *Firewall) AddUIDs(uids ...uint32) error {
	if slices.Contains(uids, 0) {
		return errors.New("site firewall: root (UID 0) cannot be a site user")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var add []nftables.SetElement
	for _, u := range sortedUnique(uids) {
		if !f.uids[u] {
			add = append(add, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(u)})
		}
	}
	if len(add) == 0 {
		return nil
	}
	// A dead shard's table may still list a UID that was freed and
	// given to one of ours: it goes first.
	if err := f.collectDead(); err != nil {
		return err
	}
	if err := f.conn.SetAddElements(f.uidSet(), add); err != nil {
		return fmt.Errorf("site firewall: %w", err)
	}
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("site firewall: add site users to %s: %w", f.table, err)
	}
	for _, e := range add {
		f.uids[binaryutil.NativeEndian.Uint32(e.Key)] = true
	}
	return nil
}

// RemoveUIDs takes site users out of the set (idempotent).
func (f *Firewall) RemoveUIDs(uids ...uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var del []nftables.SetElement
	for _, u := range sortedUnique(uids) {
		if f.uids[u] {
			del = append(del, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(u)})
		}
	}
	if len(del) == 0 {
		return nil
	}
	if err := f.conn.SetDeleteElements(f.uidSet(), del); err != nil {
		return fmt.Errorf("site firewall: %w", err)
	}
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("site firewall: remove site users from %s: %w", f.table, err)
	}
	for _, e := range del {
		delete(f.uids, binaryutil.NativeEndian.Uint32(e.Key))
	}
	return nil
}

// SetUIDs makes the set hold exactly uids.
func (f *Firewall) SetUIDs(uids ...uint32) error {
	f.mu.Lock()
	var gone []uint32
	for u := range f.uids {
		if !slices.Contains(uids, u) {
			gone = append(gone, u)
		}
	}
	f.mu.Unlock()
	if err := f.AddUIDs(uids...); err != nil {
		return err
	}
	return f.RemoveUIDs(gone...)
}

// UIDs lists the site users in the table's set, as the kernel has them.
func (f *Firewall) UIDs() ([]uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	elems, err := f.conn.GetSetElements(f.uidSet())
	if err != nil {
		return nil, fmt.Errorf("site firewall: list %s: %w", f.table, err)
	}
	var out []uint32
	for _, e := range elems {
		if len(e.Key) == 4 {
			out = append(out, binaryutil.NativeEndian.Uint32(e.Key))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Delete removes the table (idempotent).
func (f *Firewall) Delete() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deleteTable(f.table)
}

// Close closes the netlink connection; the table stays (Delete removes it).
func (f *Firewall) Close() error { return f.conn.CloseLasting() }

// deleteTable deletes a table of ours if it exists.
func (f *Firewall) deleteTable(name string) error {
	tables, err := f.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("site firewall: list tables: %w", err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == name }) {
		return nil
	}
	f.conn.DelTable(&nftables.Table{Name: name, Family: nftables.TableFamilyINet})
	if err := f.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("site firewall: delete table %s: %w", name, err)
	}
	return nil
}

// collectDead deletes other shard processes' tables whose process is gone
// (see ProcessTable), each in a transaction of its own: another process
// may be collecting the same table at the same moment, and its deletion
// winning is no failure of ours.
func (f *Firewall) collectDead() error {
	tables, err := f.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("site firewall: list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name != f.table && deadProcessTable(t.Name) {
			f.conn.DelTable(&nftables.Table{Name: t.Name, Family: nftables.TableFamilyINet})
			if err := f.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("site firewall: delete the table %s of a dead process: %w", t.Name, err)
			}
		}
	}
	return nil
}

// daddrMatch matches packets to prefix (its family only).
func daddrMatch(p netip.Prefix) []expr.Any {
	a := p.Addr()
	proto, off, n := byte(unix.NFPROTO_IPV4), uint32(16), uint32(4)
	if a.Is6() {
		proto, off, n = unix.NFPROTO_IPV6, 24, 16
	}
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
	}
	if p.Bits() < a.BitLen() {
		mask := make([]byte, n)
		for i := 0; i < p.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		ex = append(ex, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	return append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()})
}

// ifname is an interface name as the kernel compares it (IFNAMSIZ bytes).
func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

func sortedUnique[T uint16 | uint32](in []T) []T {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// Supported reports why this process cannot keep site-user rules (not root,
// no CAP_NET_ADMIN, a kernel without nf_tables or the expressions used),
// or nil: it applies the full rule set to a scratch table of its own and
// removes it.
func Supported() error {
	if os.Geteuid() != 0 {
		return errors.New("not running as root")
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	f, err := Open(Options{Table: ProcessTable("probe " + hex.EncodeToString(b))})
	if err != nil {
		return err
	}
	defer f.Close()
	p := Policy{UIDs: []uint32{DefaultSiteIDs.Last}, Ranges: []IDRange{DefaultSiteIDs}, LoopbackPorts: []uint16{80},
		Allow: []Dest{{Prefix: netip.MustParsePrefix("127.0.0.53/32"), Port: 53}}, DenyPrivate: true}
	if err := f.Apply(p); err != nil {
		return err
	}
	return f.Delete()
}
