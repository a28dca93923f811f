package api

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/aipress/aipress/internal/auditlog"
	"github.com/aipress/aipress/internal/store"
)

// Headers that say how a call came in (recorded in the audit log).
const (
	// HeaderChannel names the client: cli, portal, assistant or api (the
	// default, also for an unknown value).
	HeaderChannel = "X-AIPress-Channel"
	// HeaderRequestID carries the request's ID: the client's, when sane
	// (1–128 of A–Z a–z 0–9 . _ : -), else one the API makes. The response
	// echoes it.
	HeaderRequestID = "X-Request-ID"
)

// requestMeta returns the call's channel, request ID and source IP (the
// host of the peer's address; proxies' headers are not trusted). A request
// without a sane ID gets a new one, set on r (so later readers of r see
// the same) and echoed on w.
func requestMeta(w http.ResponseWriter, r *http.Request) (channel, requestID, sourceIP string) {
	channel = r.Header.Get(HeaderChannel)
	if !store.ValidChannel(channel) {
		channel = store.ChannelAPI
	}
	requestID = r.Header.Get(HeaderRequestID)
	if !saneRequestID(requestID) {
		var b [12]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		requestID = hex.EncodeToString(b[:])
		r.Header.Set(HeaderRequestID, requestID)
	}
	w.Header().Set(HeaderRequestID, requestID)
	sourceIP = r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		sourceIP = host
	}
	return channel, requestID, sourceIP
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// auditEvent appends e to the audit log: what every audited route does
// after its handler, and what handlers outside the routes table (sign-in,
// sign-up, password reset) call for their events, with Actor and Action
// set (e.g. Action "auth.signin", Outcome "success" or "invalid_password",
// Actor the session token's ID or "", ActorUser the user's ID). When r is
// not nil, auditEvent fills Channel, RequestID and SourceIP from it where
// e leaves them empty; Time is always the API's clock. A failed append is
// logged, not returned: the event (e.g. a mutation) has happened, and the
// response must say so. Then, when a checkpoint is due, it signs one.
func (s *server) auditEvent(ctx context.Context, r *http.Request, e store.AuditEntry) {
	if r != nil && (e.Channel == "" || e.RequestID == "" || e.SourceIP == "") {
		ch, id, ip := requestMeta(discardHeaders{}, r)
		e.Channel = cmp.Or(e.Channel, ch)
		e.RequestID = cmp.Or(e.RequestID, id)
		e.SourceIP = cmp.Or(e.SourceIP, ip)
	}
	e.Time = s.cfg.Clock().UTC()
	if err := s.cfg.Store.AppendAudit(ctx, e); err != nil {
		s.log.Error("audit append failed", "action", e.Action, "target", e.Target, "actor", e.Actor, "err", err)
		return
	}
	s.checkpointIfDue(ctx)
}

// checkpointIfDue signs an audit checkpoint when one is due (after an
// append).
func (s *server) checkpointIfDue(ctx context.Context) {
	if s.cfg.AuditSigner != nil {
		if _, err := auditlog.CheckpointIfDue(ctx, s.cfg.Store, s.cfg.AuditSigner, s.cfg.AuditCheckpointEvery, s.cfg.Clock()); err != nil {
			s.log.Error("audit checkpoint failed", "err", err)
		}
	}
}

// discardHeaders is a ResponseWriter for requestMeta when nothing is
// answered through it.
type discardHeaders struct{}

func (discardHeaders) Header() http.Header         { return http.Header{} }
func (discardHeaders) Write(p []byte) (int, error) { return len(p), nil }
func (discardHeaders) WriteHeader(int)             {}

// auditOrgs returns the organisations whose audit entries the caller may
// read: nil for every entry (platform readers), else the organisations
// where it may read the audit (owners). The audit handlers take the filter
// from here only.
func (s *server) auditOrgs(c *call) []string { return c.who.visibleOrgs(permOrgAudit) }

// AuditList is the body of GET /v1/audit.
type AuditList struct {
	Items []store.AuditEntry `json:"items"`
	// Next, when set, is the after= of the next page.
	Next int64 `json:"next,omitempty"`
}

// auditQuery reads org, since and after of GET /v1/audit and
// /v1/audit/export. since is RFC 3339.
func auditQuery(r *http.Request) (store.AuditListOptions, error) {
	q := r.URL.Query()
	opts := store.AuditListOptions{Org: q.Get("org")}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return opts, errorf(http.StatusBadRequest, CodeInvalidArgument, "since=%q: want an RFC 3339 time, e.g. 2025-03-14T15:09:26Z", v)
		}
		opts.Since = t
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return opts, errorf(http.StatusBadRequest, CodeInvalidArgument, "after=%q: want a sequence number (the next of the previous page)", v)
		}
		opts.AfterSeq = n
	}
	return opts, nil
}

// listAudit serves GET /v1/audit: a page of entries in sequence order.
func (s *server) listAudit(c *call) (response, error) {
	return s.listAuditFor(c, s.auditOrgs(c))
}

// listAuditFor lists the entries of orgs (nil: all) that the query selects.
func (s *server) listAuditFor(c *call, orgs []string) (response, error) {
	opts, err := auditQuery(c.r)
	if err != nil {
		return response{}, err
	}
	limit, err := parseLimit(c)
	if err != nil {
		return response{}, err
	}
	opts.Limit, opts.Orgs = limit, orgs
	items, err := s.cfg.Store.ListAudit(c.r.Context(), opts)
	if err != nil {
		return response{}, internal(err)
	}
	out := AuditList{Items: items}
	if len(items) == store.PageLimit(limit) {
		out.Next = items[len(items)-1].Seq
	}
	return response{status: http.StatusOK, body: out}, nil
}

// exportAudit serves GET /v1/audit/export: every entry the query selects,
// as JSON lines, streamed a page at a time.
func (s *server) exportAudit(c *call) (response, error) {
	return s.exportAuditFor(c, s.auditOrgs(c))
}

func (s *server) exportAuditFor(c *call, orgs []string) (response, error) {
	opts, err := auditQuery(c.r)
	if err != nil {
		return response{}, err
	}
	opts.Orgs, opts.Limit = orgs, store.MaxLimit
	ctx := c.r.Context()
	// The first page is read before answering, so that a failing store
	// gets a proper error response.
	first, err := s.cfg.Store.ListAudit(ctx, opts)
	if err != nil {
		return response{}, internal(err)
	}
	return response{contentType: "application/x-ndjson", stream: func(w http.ResponseWriter) error {
		enc := json.NewEncoder(w)
		page := first
		for {
			for _, e := range page {
				if err := enc.Encode(e); err != nil {
					return err
				}
			}
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			if len(page) < opts.Limit {
				return nil
			}
			opts.AfterSeq = page[len(page)-1].Seq
			if page, err = s.cfg.Store.ListAudit(ctx, opts); err != nil {
				return err
			}
		}
	}}, nil
}

// auditKeys returns the checkpoint keys verification trusts, or a 501 when
// the API has no checkpoint key.
func (s *server) auditKeys() ([]ed25519.PublicKey, error) {
	if s.cfg.AuditSigner == nil {
		return nil, errorf(http.StatusNotImplemented, CodeUnimplemented, "audit checkpoints are not configured on this control plane")
	}
	return append([]ed25519.PublicKey{s.cfg.AuditSigner.PublicKey()}, s.cfg.AuditTrustedKeys...), nil
}

// AuditVerifyResponse is the body of POST /v1/audit/verify.
type AuditVerifyResponse = auditlog.Report

// verifyAudit serves POST /v1/audit/verify: walks the whole chain and its
// checkpoints. Tampering is a 200 with ok false (the check worked); more
// than twice the checkpoint interval of unsigned entries counts as
// tampering (deleted checkpoints).
func (s *server) verifyAudit(c *call) (response, error) {
	keys, err := s.auditKeys()
	if err != nil {
		return response{}, err
	}
	every := s.cfg.AuditCheckpointEvery
	if every <= 0 {
		every = auditlog.DefaultEvery
	}
	rep, err := auditlog.Verify(c.r.Context(), s.cfg.Store, auditlog.Options{Keys: keys, MaxUnsigned: 2 * int64(every)})
	if err != nil {
		return response{}, internal(err)
	}
	if !rep.OK {
		c.detail = rep.Problem
	}
	return response{status: http.StatusOK, body: rep, unchanged: true}, nil
}

// AuditCheckpointResponse is the body of POST /v1/audit/checkpoint.
type AuditCheckpointResponse struct {
	Checkpoint store.AuditCheckpoint `json:"checkpoint"`
	// Created is false when the head had a checkpoint already (or the log
	// is empty: then Checkpoint is zero).
	Created bool `json:"created"`
}

// checkpointAudit serves POST /v1/audit/checkpoint: signs the chain's head
// now.
func (s *server) checkpointAudit(c *call) (response, error) {
	if _, err := s.auditKeys(); err != nil {
		return response{}, err
	}
	cp, made, err := auditlog.Checkpoint(c.r.Context(), s.cfg.Store, s.cfg.AuditSigner, s.cfg.Clock())
	if err != nil {
		return response{}, internal(err)
	}
	if made {
		c.detail = "seq " + strconv.FormatInt(cp.Seq, 10)
	}
	return response{status: http.StatusOK, body: AuditCheckpointResponse{Checkpoint: cp, Created: made}, unchanged: true}, nil
}
