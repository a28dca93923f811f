package api

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// The device authorization grant (RFC 8628) for `aipress login`: the CLI
// asks for a device code and a short user code, the user approves the user
// code while signed in (POST /v1/auth/device/approve), and the CLI polls
// for its API token.
//
// Pending codes live in the control plane's memory (deviceStore), not in
// the store: they are short-lived (DeviceTTL, 10 minutes) and a sign-in
// that is lost with a restart is simply started again. With several
// control-plane processes behind one address, the CLI's polls must reach
// the process that issued the code (or the table in migration 00009 this
// part left out becomes necessary).

// maxDevicePending bounds the pending codes (each request makes one).
const maxDevicePending = 10_000

// userCodeAlphabet has no vowels (no words) and no look-alikes.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

type deviceEntry struct {
	hash     string // TokenHash of the device code
	userCode string // 8 letters, without the dash
	name     string
	expires  time.Time
	interval time.Duration
	lastPoll time.Time
	userID   string // set on approval
}

type deviceStore struct {
	mu     sync.Mutex
	byHash map[string]*deviceEntry
	byUser map[string]*deviceEntry
}

func newDeviceStore() *deviceStore {
	return &deviceStore{byHash: map[string]*deviceEntry{}, byUser: map[string]*deviceEntry{}}
}

func (d *deviceStore) sweep(now time.Time) {
	for h, e := range d.byHash {
		if !now.Before(e.expires) {
			delete(d.byHash, h)
			delete(d.byUser, e.userCode)
		}
	}
}

func (d *deviceStore) add(e *deviceEntry, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.byHash) >= maxDevicePending {
		d.sweep(now)
		if len(d.byHash) >= maxDevicePending {
			return false
		}
	}
	if _, taken := d.byUser[e.userCode]; taken {
		return false
	}
	d.byHash[e.hash] = e
	d.byUser[e.userCode] = e
	return true
}

func newUserCode() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	for i := range b {
		b[i] = userCodeAlphabet[int(b[i])%len(userCodeAlphabet)] // 256 % 20 bias is negligible for a 10-minute code
	}
	return string(b)
}

// normUserCode accepts "bcdf-ghjk", "BCDF GHJK" and "BCDFGHJK".
func normUserCode(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// DeviceRequest is the (optional) body of POST /v1/auth/device.
type DeviceRequest struct {
	// Name names the API token the flow makes (e.g. the host's name).
	Name string `json:"name,omitempty"`
}

// DeviceResponse is RFC 8628's device authorization response.
type DeviceResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"` // XXXX-XXXX
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"` // seconds
	Interval                int    `json:"interval"`   // seconds between polls
}

func (s *server) deviceStart(c *call) (response, error) {
	var req DeviceRequest
	if c.r.ContentLength != 0 {
		if err := decodeJSON(c.r, &req); err != nil {
			return response{}, err
		}
	}
	if len(req.Name) > maxShortString || !plainText(req.Name) {
		return response{}, badRequest("name is at most %d characters of plain text", maxShortString)
	}
	secret, hash, err := store.NewTokenSecret()
	if err != nil {
		return response{}, internal(err)
	}
	now := s.cfg.Clock()
	e := &deviceEntry{hash: hash, name: req.Name, expires: now.Add(s.auth.cfg.DeviceTTL), interval: s.auth.cfg.DeviceInterval}
	for range 5 {
		e.userCode = newUserCode()
		if s.auth.devices.add(e, now) {
			code := e.userCode[:4] + "-" + e.userCode[4:]
			uri := s.baseURL(c.r) + "/device"
			return response{status: http.StatusOK, body: DeviceResponse{DeviceCode: "aipd_" + secret[len(store.TokenPrefix):],
				UserCode: code, VerificationURI: uri, VerificationURIComplete: uri + "?user_code=" + code,
				ExpiresIn: int(s.auth.cfg.DeviceTTL / time.Second), Interval: int(e.interval / time.Second)}}, nil
		}
	}
	return response{}, rateLimited(s.auth.cfg.DeviceInterval)
}

// deviceHash is what the store keeps of a device code.
func deviceHash(code string) string {
	return store.TokenHash(store.TokenPrefix + strings.TrimPrefix(code, "aipd_"))
}

// DeviceApproveRequest is the body of POST /v1/auth/device/approve.
type DeviceApproveRequest struct {
	UserCode string `json:"user_code"`
}

func (s *server) deviceApprove(c *call) (response, error) {
	var req DeviceApproveRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	code := normUserCode(req.UserCode)
	c.target = code
	if c.token.UserID == "" || c.token.Role != store.RoleUser {
		// The approved sign-in gets all of the user's rights: only a
		// sign-in of the user (a session, `aipress login`) may grant them,
		// not a narrower token of the user's.
		return response{}, errorf(http.StatusForbidden, CodeForbidden, "approve a sign-in while signed in as the user (token %q is not a sign-in)", c.token.ID)
	}
	now := s.cfg.Clock()
	d := s.auth.devices
	d.mu.Lock()
	e := d.byUser[code]
	ok := e != nil && now.Before(e.expires) && e.userID == ""
	if ok {
		e.userID = c.token.UserID
	}
	d.mu.Unlock()
	if !ok {
		return response{}, errorf(http.StatusNotFound, CodeNotFound, "no pending sign-in with code %q (expired, used or mistyped)", req.UserCode)
	}
	c.detail = "user " + c.token.UserID
	return response{status: http.StatusOK, body: struct {
		Approved bool `json:"approved"`
	}{true}}, nil
}

// DeviceTokenRequest is the body of POST /v1/auth/device/token.
type DeviceTokenRequest struct {
	DeviceCode string `json:"device_code"`
}

// Device-flow polling answers (400, RFC 8628 §3.5).
const (
	CodeAuthorizationPending = "authorization_pending"
	CodeSlowDown             = "slow_down"
	CodeExpiredToken         = "expired_token"
)

func (s *server) deviceToken(c *call) (response, error) {
	var req DeviceTokenRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if req.DeviceCode == "" {
		return response{}, badRequest("device_code is required")
	}
	now := s.cfg.Clock()
	d := s.auth.devices
	d.mu.Lock()
	e := d.byHash[deviceHash(req.DeviceCode)]
	var err error
	var userID, name string
	switch {
	case e == nil || !now.Before(e.expires):
		err = errorf(http.StatusBadRequest, CodeExpiredToken, "the device code is unknown or expired; run the sign-in again")
	case !e.lastPoll.IsZero() && now.Sub(e.lastPoll) < e.interval:
		e.interval += 5 * time.Second
		e.lastPoll = now
		err = errorf(http.StatusBadRequest, CodeSlowDown, "polling too fast; wait %d seconds between polls", int(e.interval/time.Second))
	case e.userID == "":
		e.lastPoll = now
		err = errorf(http.StatusBadRequest, CodeAuthorizationPending, "waiting for the user to approve the code")
	default:
		userID, name = e.userID, e.name
		delete(d.byHash, e.hash)
		delete(d.byUser, e.userCode)
	}
	d.mu.Unlock()
	if err != nil {
		return response{}, err
	}
	ctx := c.r.Context()
	resp, err := func() (response, error) {
		acc := s.cfg.Store
		u, err := acc.GetUser(ctx, userID)
		if errors.Is(err, store.ErrNotFound) || err == nil && u.Disabled {
			return response{}, errorf(http.StatusForbidden, CodeForbidden, "the approving user no longer may sign in")
		}
		if err != nil {
			return response{}, internal(fmt.Errorf("device sign-in: %w", err))
		}
		if name == "" {
			name = "aipress login"
		}
		return s.signedIn(c, u, true, name, http.StatusOK)
	}()
	s.auditAuth(c, "auth.login.device", userID, userID, err, "ip "+clientIP(c.r))
	return resp, err
}
