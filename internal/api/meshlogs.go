package api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aipress/aipress/internal/logmesh"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitelog"
	"github.com/aipress/aipress/internal/store"
)

// Reading logs where they are (docs/operations.md, Logs): a site's PHP log
// through its shard's gateway, its access log from every edge that
// registered a logs address, over mutual TLS with the control plane's own
// certificate (package logmesh). The control plane dials only when a
// person asks for a log.

// EdgeLogsTTL: an edge that has not registered its logs address for this
// long (it does every minute) is not asked for logs.
const EdgeLogsTTL = 3 * time.Minute

// edgeLogsKey is the store setting of the edges' logs addresses.
const edgeLogsKey = "edge.logs"

// maxEdgeLogs bounds the registrations the setting remembers (the oldest
// go), within store.MaxSettingBytes.
const maxEdgeLogs = 300

// edgeLogsForget: a registration older than this is removed.
const edgeLogsForget = 24 * time.Hour

// maxEdgeLogsPerEdge bounds the addresses one edge token keeps registered
// (its oldest go): one token cannot push the other edges' registrations out
// of the setting, nor fill a reading's logmesh.MaxSources with addresses.
const maxEdgeLogsPerEdge = 32

// errForbiddenLogsAddress: an address the control plane never dials for
// logs.
var errForbiddenLogsAddress = errors.New("a link-local, multicast or unspecified address")

// forbiddenLogsIP reports whether ip is never dialed for logs: link-local
// (the cloud metadata service at 169.254.169.254, fe80::/10), multicast and
// unspecified addresses. An edge token chooses the address it registers;
// the control plane dials it with its certificate, so these are refused
// both when registered as literals and when a name resolves to them.
func forbiddenLogsIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	return !ip.IsValid() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() || ip.IsMulticast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast()
}

// EdgeLogsAddressRequest is the body of PUT /v1/edge/logs-address.
type EdgeLogsAddressRequest struct {
	// Address is the host:port where the edge serves sites' access logs
	// to the control plane (mutual TLS, logmesh.Proto).
	Address string `json:"address"`
}

// EdgeLogsAddressResponse answers it.
type EdgeLogsAddressResponse struct {
	Edge    string `json:"edge"`
	Address string `json:"address"`
	// TTLSeconds: register again before this.
	TTLSeconds int `json:"ttl_seconds"`
}

// edgeLogsEntry is one registration. Several edges may share a token (the
// replicas of a Deployment): each registers its own address under the
// token's name, and every one is asked.
type edgeLogsEntry struct {
	Edge    string    `json:"edge"`
	Address string    `json:"address"`
	Seen    time.Time `json:"seen"`
}

// logSourceName names the edge edge at addr in merged cursors: the edge's
// name and a digest of its address (replicas sharing a token differ).
func logSourceName(edge, addr string) string {
	sum := sha256.Sum256([]byte(addr))
	return edge + "." + hex.EncodeToString(sum[:4])
}

// checkHostPort validates an address a machine registers.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || len(addr) > 260 {
		return fmt.Errorf("address %q: want host:port", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: bad port", addr)
	}
	if ip, err := netip.ParseAddr(host); err == nil && forbiddenLogsIP(ip) {
		return fmt.Errorf("address %q: %w", addr, errForbiddenLogsAddress)
	}
	return nil
}

// putEdgeLogsAddress registers where the token's edge serves its logs.
func (s *server) putEdgeLogsAddress(c *call) (response, error) {
	var req EdgeLogsAddressRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if err := checkHostPort(req.Address); err != nil {
		return response{}, badRequest("%v", err)
	}
	c.target = c.token.ID
	if err := registerEdgeLogs(c.r.Context(), s.cfg.Store, c.token.ID, req.Address, s.cfg.Clock()); err != nil {
		return response{}, internal(err)
	}
	return response{status: http.StatusOK, unchanged: true, body: EdgeLogsAddressResponse{
		Edge: c.token.ID, Address: req.Address, TTLSeconds: int(EdgeLogsTTL / time.Second)}}, nil
}

func loadEdgeLogs(ctx context.Context, st store.Store) (map[string]edgeLogsEntry, int64, error) {
	set, err := st.GetSetting(ctx, edgeLogsKey)
	if errors.Is(err, store.ErrNotFound) {
		return map[string]edgeLogsEntry{}, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	m := map[string]edgeLogsEntry{}
	if err := json.Unmarshal(set.Value, &m); err != nil {
		return nil, 0, fmt.Errorf("edge logs addresses: %w", err)
	}
	return m, set.Version, nil
}

// registerEdgeLogs records edge's logs address, seen at now
// (compare-and-set, retried when another replica wrote first).
func registerEdgeLogs(ctx context.Context, st store.Store, edge, addr string, now time.Time) error {
	for attempt := 0; ; attempt++ {
		m, version, err := loadEdgeLogs(ctx, st)
		if err != nil {
			return err
		}
		for name, e := range m {
			if now.Sub(e.Seen) > edgeLogsForget {
				delete(m, name)
			}
		}
		m[edge+" "+addr] = edgeLogsEntry{Edge: edge, Address: addr, Seen: now.UTC()}
		for oldestEdgeLogs(m, edge) > maxEdgeLogsPerEdge {
			// its oldest went: count again
		}
		for oldestEdgeLogs(m, "") > maxEdgeLogs {
			// the oldest went: count again
		}
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		_, err = st.PutSetting(ctx, edgeLogsKey, b, version)
		if errors.Is(err, store.ErrConflict) && attempt < 5 {
			continue
		}
		return err
	}
}

// oldestEdgeLogs counts the registrations of edge in m (all of them when
// edge is "") and, when there are more than allowed (maxEdgeLogsPerEdge for
// one edge, maxEdgeLogs for all), removes the oldest of them; it returns
// the count before removing.
func oldestEdgeLogs(m map[string]edgeLogsEntry, edge string) int {
	n, oldest := 0, ""
	for name, e := range m {
		if edge != "" && e.Edge != edge {
			continue
		}
		n++
		if oldest == "" || e.Seen.Before(m[oldest].Seen) {
			oldest = name
		}
	}
	if (edge == "" && n > maxEdgeLogs) || (edge != "" && n > maxEdgeLogsPerEdge) {
		delete(m, oldest)
	}
	return n
}

// MeshLogs reads a log on this machine when it is here (Local), else
// where it is kept: the PHP log through its shard's gateway, the access
// log from every edge registered within EdgeLogsTTL, merged by time.
type MeshLogs struct {
	Local LocalLogs
	Store store.Store
	// Credentials returns the control plane's certificate
	// (ControlCredentials); nil: only Local.
	Credentials func(ctx context.Context) (*mtls.Credentials, error)
	Clock       func() time.Time
	// DialTimeout bounds connecting to one machine (default 5 s).
	DialTimeout time.Duration
}

// Open implements SiteLogs.
func (m MeshLogs) Open(ctx context.Context, st *site.Site, kind string, q sitelog.Query, follow bool) (LogReading, error) {
	r, err := m.Local.Open(ctx, st, kind, q, follow)
	if !errors.Is(err, ErrLogsElsewhere) || m.Credentials == nil {
		return r, err
	}
	clock := m.Clock
	if clock == nil {
		clock = time.Now
	}
	timeout := cmp.Or(m.DialTimeout, 5*time.Second)
	creds, err := m.Credentials(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: the control plane's certificate: %w", ErrLogsUnreachable, err)
	}
	req := logmesh.Request{Site: st.Metadata.Name, UID: st.Metadata.UID, Kind: kind, Since: q.Since, Status: q.Status,
		Limit: q.Limit, After: q.After, Follow: follow}
	var sources []logmesh.Source
	merged := false
	switch kind {
	case sitelog.KindPHP:
		name := st.Status.Shard
		sh, err := m.Store.GetShard(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("shard %q of %s: %w", name, st.Metadata.Name, ErrLogsElsewhere)
		}
		if err != nil {
			return nil, err
		}
		if sh.Gateway == "" {
			return nil, fmt.Errorf("shard %s has no gateway: %w", name, ErrLogsElsewhere)
		}
		sources = []logmesh.Source{{Name: name, Dial: meshDialer(creds, mtls.Identity{Role: mtls.RoleShard, Name: name}, sh.Gateway, timeout)}}
	case sitelog.KindAccess:
		edges, _, err := loadEdgeLogs(ctx, m.Store)
		if err != nil {
			return nil, err
		}
		now := clock()
		for _, e := range edges {
			id := mtls.Identity{Role: mtls.RoleEdge, Name: e.Edge}
			if now.Sub(e.Seen) > EdgeLogsTTL || id.Valid() != nil || checkHostPort(e.Address) != nil {
				continue
			}
			sources = append(sources, logmesh.Source{Name: logSourceName(e.Edge, e.Address), Dial: meshDialer(creds, id, e.Address, timeout)})
		}
		if len(sources) == 0 {
			return nil, fmt.Errorf("access log of %s: %w", st.Metadata.Name, ErrNoLogSources)
		}
		slices.SortFunc(sources, func(a, b logmesh.Source) int { return cmp.Compare(a.Name, b.Name) })
		sources = sources[:min(len(sources), logmesh.MaxSources)]
		merged = true
	default:
		return nil, fmt.Errorf("log kind %q", kind)
	}
	rd, err := logmesh.Open(ctx, sources, req, merged, LogsFollowInterval)
	switch {
	case err == nil:
		return rd, nil
	case errors.Is(err, logmesh.ErrBadCursor):
		return nil, fmt.Errorf("%w: %w", ErrBadCursor, err)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("%w: %w", ErrLogsUnreachable, err)
}

// meshDialer connects to peer at addr with the control plane's
// certificate and logmesh.Proto.
func meshDialer(creds *mtls.Credentials, peer mtls.Identity, addr string, timeout time.Duration) logmesh.Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		nd := &net.Dialer{Timeout: timeout, Control: func(_, address string, _ syscall.RawConn) error {
			// The address connected to, after any name was resolved.
			if ap, err := netip.ParseAddrPort(address); err != nil || forbiddenLogsIP(ap.Addr()) {
				return fmt.Errorf("%s: %w", address, errForbiddenLogsAddress)
			}
			return nil
		}}
		d := tls.Dialer{NetDialer: nd, Config: creds.ClientTLS(peer, logmesh.Proto)}
		dctx, cancel := context.WithTimeout(ctx, timeout+2*time.Second)
		defer cancel()
		conn, err := mtls.Dial(dctx, &d, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s at %s: %w", peer, addr, err)
		}
		if p := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != logmesh.Proto {
			conn.Close()
			return nil, fmt.Errorf("%s at %s does not serve logs (negotiated %q)", peer, addr, p)
		}
		return conn, nil
	}
}

// ControlCredentials are the control plane's own mesh credentials, kept
// in dir with identity self (mtls.RoleControl): issued by the platform's
// CA directly (no API call issues a control identity), renewed when due
// or when the CA bundle changed (a rotation's phase), checked each time a
// log is read.
func ControlCredentials(dir string, self mtls.Identity, ca *mtls.CA, st store.Store, clock func() time.Time) (func(ctx context.Context) (*mtls.Credentials, error), error) {
	if self.Role != mtls.RoleControl {
		return nil, fmt.Errorf("control credentials for %s", self)
	}
	creds, err := mtls.LoadCredentials(dir, self)
	if err != nil {
		return nil, err
	}
	if clock == nil {
		clock = time.Now
	}
	mesh := &meshCA{ca: ca, st: st}
	var mu sync.Mutex
	return func(ctx context.Context) (*mtls.Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		state, err := mesh.current(ctx)
		if err != nil {
			return nil, err
		}
		bundle, err := ca.Bundle(state)
		if err != nil {
			return nil, err
		}
		id, err := mtls.BundleID(bundle)
		if err != nil {
			return nil, err
		}
		if !creds.NeedsRenewal(clock()) && creds.Bundle() == id {
			return creds, nil
		}
		csr, err := creds.CSR()
		if err != nil {
			return nil, err
		}
		cert, bundle, _, err := ca.Issue(state, csr, self, 0)
		if err != nil {
			return nil, err
		}
		if err := creds.Install(cert, bundle); err != nil {
			return nil, err
		}
		return creds, nil
	}, nil
}
