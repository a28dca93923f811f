package gitsync

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// record is a target's setting: its configuration, webhook, sync request
// and status.
type record struct {
	Target
	Org         string     `json:"org"`
	Config      Config     `json:"config"`
	HookID      string     `json:"hook_id"`
	HookSecret  string     `json:"hook_secret"` // sealed
	RequestedAt *time.Time `json:"requested_at,omitempty"`
	Status      Status     `json:"status"`

	version int64 // the setting's version
}

// Credential is a stored credential: HTTP basic auth (a token as the
// password works with GitHub, GitLab and Gitea).
type Credential struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// CredentialInfo names a stored credential (never its content).
type CredentialInfo struct {
	Name     string `json:"name"`
	Username string `json:"username"`
}

// Setting key prefixes.
const (
	prefixSite = "gitsync.site."
	prefixOrg  = "gitsync.org."
	prefixHook = "gitsync.hook."
	prefixCred = "gitsync.cred."
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Store store.Store
	// Key seals credentials and webhook secrets (SealKey of the platform
	// secret; 32 bytes).
	Key []byte
	// Clock defaults to time.Now.
	Clock func() time.Time
	// AllowPrivateNetworks accepts repository URLs over plain http and
	// to loopback or private addresses (--allow-private-fetch: tests,
	// private mirrors). The Poller must be told the same.
	AllowPrivateNetworks bool
}

// Manager keeps git sync's records in the store: configurations, webhooks,
// credentials, sync requests and statuses. The API uses it; a Poller
// reads it and writes statuses. Safe for concurrent use.
type Manager struct {
	st           store.Store
	seal         *sealer
	clock        func() time.Time
	allowPrivate bool
	wake         chan struct{}
}

// NewManager returns a Manager.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("gitsync: no store")
	}
	sl, err := newSealer(cfg.Key)
	if err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Manager{st: cfg.Store, seal: sl, clock: cfg.Clock, allowPrivate: cfg.AllowPrivateNetworks, wake: make(chan struct{}, 1)}, nil
}

// Wake tells this process's poller (if it runs here) to look at the
// records now. Other replicas' pollers see sync requests at their next
// tick.
func (m *Manager) Wake() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Woken receives after Wake.
func (m *Manager) Woken() <-chan struct{} { return m.wake }

func (m *Manager) now() time.Time { return m.clock().UTC() }

// load reads t's record (ErrNotFound).
func (m *Manager) load(ctx context.Context, t Target) (*record, error) {
	set, err := m.st.GetSetting(ctx, t.key())
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("git sync of %s: %w", t, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("git sync of %s: %w", t, err)
	}
	return decodeRecord(set)
}

func decodeRecord(set *store.Setting) (*record, error) {
	var rec record
	if err := json.Unmarshal(set.Value, &rec); err != nil {
		return nil, fmt.Errorf("git sync record %s: %w", set.Key, err)
	}
	rec.version = set.Version
	return &rec, nil
}

// save writes rec at its version (store.ErrConflict when it moved).
func (m *Manager) save(ctx context.Context, rec *record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("git sync of %s: %w", rec.Target, err)
	}
	if len(b) > store.MaxSettingBytes {
		return fmt.Errorf("git sync of %s: record of %d bytes over the limit: %w", rec.Target, len(b), ErrInvalid)
	}
	set, err := m.st.PutSetting(ctx, rec.key(), b, rec.version)
	if err != nil {
		return fmt.Errorf("git sync of %s: %w", rec.Target, err)
	}
	rec.version = set.Version
	return nil
}

// update applies mutate to t's record with compare-and-set, retrying
// when another writer came first.
func (m *Manager) update(ctx context.Context, t Target, mutate func(*record) error) (*record, error) {
	for {
		rec, err := m.load(ctx, t)
		if err != nil {
			return nil, err
		}
		if err := mutate(rec); err != nil {
			return nil, err
		}
		if err := m.save(ctx, rec); errors.Is(err, store.ErrConflict) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		} else if err != nil {
			return nil, err
		}
		return rec, nil
	}
}

func (m *Manager) view(rec *record, secret string) *View {
	st := rec.Status
	st.Basis = ""
	return &View{Target: rec.Target, Org: rec.Org, Config: rec.Config, SyncRequestedAt: rec.RequestedAt, Status: st,
		Webhook: Webhook{ID: rec.HookID, Path: HookPath(rec.HookID), Secret: secret}}
}

// Put sets t's configuration (t belongs to org). A new configuration gets
// a webhook, whose secret the returned view shows this once; a changed
// one keeps its webhook. Either way a sync is requested. A credential
// named in cfg must exist in org. Bad input: ErrInvalid.
func (m *Manager) Put(ctx context.Context, t Target, org string, cfg Config) (*View, error) {
	if t.Kind != KindSite && t.Kind != KindOrg {
		return nil, fmt.Errorf("target kind %q: %w", t.Kind, ErrInvalid)
	}
	if len(t.key()) > 128 || t.Name == "" || !store.ValidSettingKey(t.key()) {
		return nil, fmt.Errorf("%s: names over %d characters cannot use git sync: %w", t, 128-len(prefixSite), ErrInvalid)
	}
	if err := cfg.Normalize(t.Kind, m.allowPrivate); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if cfg.Credentials != nil {
		if _, err := m.credential(ctx, org, cfg.Credentials.Secret); err != nil {
			return nil, err
		}
	}
	now := m.now()
	for {
		rec, err := m.load(ctx, t)
		secret := ""
		switch {
		case errors.Is(err, ErrNotFound):
			rec = &record{Target: t}
			rec.HookID = randomHex(16)
			secret = randomHex(32)
			rec.HookSecret = m.seal.seal(prefixHook+rec.HookID, []byte(secret))
		case err != nil:
			return nil, err
		}
		rec.Org = org
		rec.Config = cfg
		rec.RequestedAt = &now
		err = m.save(ctx, rec)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		// The webhook's index: written after the record, so that a
		// crash in between leaves an index-less webhook (401s) that the
		// next Put repairs, never an index pointing nowhere it could
		// not check.
		if err := m.putHookIndex(ctx, rec); err != nil {
			return nil, err
		}
		m.Wake()
		return m.view(rec, secret), nil
	}
}

func (m *Manager) putHookIndex(ctx context.Context, rec *record) error {
	key := prefixHook + rec.HookID
	if _, err := m.st.PutSetting(ctx, key, []byte(rec.key()), 0); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("git sync of %s: webhook index: %w", rec.Target, err)
	}
	return nil
}

// Get returns t's configuration and status (ErrNotFound).
func (m *Manager) Get(ctx context.Context, t Target) (*View, error) {
	rec, err := m.load(ctx, t)
	if err != nil {
		return nil, err
	}
	return m.view(rec, ""), nil
}

// Delete removes t's configuration, status and webhook (ErrNotFound). The
// sites it applied stay as they are.
func (m *Manager) Delete(ctx context.Context, t Target) error {
	for {
		rec, err := m.load(ctx, t)
		if err != nil {
			return err
		}
		err = m.st.DeleteSetting(ctx, rec.key(), rec.version)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("git sync of %s: %w", t, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("git sync of %s: %w", t, err)
		}
		if set, err := m.st.GetSetting(ctx, prefixHook+rec.HookID); err == nil {
			_ = m.st.DeleteSetting(ctx, set.Key, set.Version) // a stale index only ever answers 401
		}
		return nil
	}
}

// RequestSync asks for a sync of t now (ErrNotFound).
func (m *Manager) RequestSync(ctx context.Context, t Target) (*View, error) {
	now := m.now()
	rec, err := m.update(ctx, t, func(r *record) error { r.RequestedAt = &now; return nil })
	if err != nil {
		return nil, err
	}
	m.Wake()
	return m.view(rec, ""), nil
}

// MaxHookBody bounds a webhook delivery's body.
const MaxHookBody = 5 << 20

// Hook handles a webhook delivery to id: with a valid signature of body
// (GitHub's X-Hub-Signature-256: sha256=<hex>, or Gitea's
// X-Gitea-Signature: <hex>; HMAC-SHA256 with the webhook's secret) it
// requests a sync of the webhook's target and returns it; otherwise
// ErrBadSignature (an unknown id too) and nothing happens. A replayed
// delivery only requests a sync again, which is harmless.
func (m *Manager) Hook(ctx context.Context, id string, h http.Header, body []byte) (Target, error) {
	if !hookIDRE(id) {
		return Target{}, ErrBadSignature
	}
	idx, err := m.st.GetSetting(ctx, prefixHook+id)
	if errors.Is(err, store.ErrNotFound) {
		return Target{}, ErrBadSignature
	}
	if err != nil {
		return Target{}, fmt.Errorf("webhook: %w", err)
	}
	set, err := m.st.GetSetting(ctx, string(idx.Value))
	if errors.Is(err, store.ErrNotFound) {
		return Target{}, ErrBadSignature
	}
	if err != nil {
		return Target{}, fmt.Errorf("webhook: %w", err)
	}
	rec, err := decodeRecord(set)
	if err != nil {
		return Target{}, err
	}
	if rec.HookID != id {
		return Target{}, ErrBadSignature
	}
	secret, err := m.seal.open(prefixHook+id, rec.HookSecret)
	if err != nil {
		return Target{}, err
	}
	if !ValidSignature(secret, h, body) {
		return Target{}, ErrBadSignature
	}
	if _, err := m.RequestSync(ctx, rec.Target); err != nil {
		return Target{}, err
	}
	return rec.Target, nil
}

// ValidSignature reports whether h carries a valid HMAC-SHA256 of body
// with secret: X-Hub-Signature-256 "sha256=<hex>" (GitHub, Gitea, GitLab's
// compatible senders) or X-Gitea-Signature "<hex>". Constant-time.
func ValidSignature(secret []byte, h http.Header, body []byte) bool {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	want := mac.Sum(nil)
	check := func(v string) bool {
		got, err := hex.DecodeString(strings.TrimSpace(v))
		return err == nil && hmac.Equal(got, want)
	}
	if v := h.Get("X-Hub-Signature-256"); v != "" {
		hexSig, ok := strings.CutPrefix(v, "sha256=")
		return ok && check(hexSig)
	}
	if v := h.Get("X-Gitea-Signature"); v != "" {
		return check(v)
	}
	return false
}

// Sign returns the X-Hub-Signature-256 value of body with secret (for
// tests and senders).
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func hookIDRE(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// list returns every record, sites first.
func (m *Manager) list(ctx context.Context) ([]*record, error) {
	var out []*record
	for _, p := range []string{prefixSite, prefixOrg} {
		sets, err := m.st.ListSettings(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("git sync records: %w", err)
		}
		for i := range sets {
			rec, err := decodeRecord(&sets[i])
			if err != nil {
				return nil, err
			}
			out = append(out, rec)
		}
	}
	return out, nil
}

// setStatus writes the status of a sync of rec (read at the sync's start):
// unless rec's configuration changed meanwhile (then the status is of
// another repository, branch or path and is dropped) or rec was deleted.
func (m *Manager) setStatus(ctx context.Context, rec *record, st Status) error {
	_, err := m.update(ctx, rec.Target, func(cur *record) error {
		if cur.Config.basis() != rec.Config.basis() || cur.HookID != rec.HookID {
			return errStale
		}
		cur.Status = st
		return nil
	})
	if errors.Is(err, errStale) || errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

var errStale = errors.New("configuration changed during the sync")

// credKey is the setting of org's credential name.
func credKey(org, name string) string { return prefixCred + org + "." + name }

// PutCredential stores (or replaces) org's credential name, sealed.
func (m *Manager) PutCredential(ctx context.Context, org, name string, c Credential) error {
	if !ValidSecretName(name) {
		return fmt.Errorf("credential name %q (lower-case letters, digits, '-', '_'; at most 50): %w", name, ErrInvalid)
	}
	if c.Password == "" {
		return fmt.Errorf("credential %q: password (or token) required: %w", name, ErrInvalid)
	}
	if len(c.Username) > 256 || len(c.Password) > 4096 || strings.ContainsAny(c.Username, ":\r\n\x00") {
		return fmt.Errorf("credential %q: username or password malformed or too long: %w", name, ErrInvalid)
	}
	key := credKey(org, name)
	plain, _ := json.Marshal(c)
	sealed, _ := json.Marshal(storedCredential{Username: c.Username, Sealed: m.seal.seal(key, plain)})
	for {
		version := int64(0)
		if set, err := m.st.GetSetting(ctx, key); err == nil {
			version = set.Version
		} else if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("credential %q: %w", name, err)
		}
		_, err := m.st.PutSetting(ctx, key, sealed, version)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("credential %q: %w", name, err)
		}
		return nil
	}
}

type storedCredential struct {
	Username string `json:"username"`
	Sealed   string `json:"sealed"`
}

// DeleteCredential removes org's credential name (ErrNotFound).
func (m *Manager) DeleteCredential(ctx context.Context, org, name string) error {
	if !ValidSecretName(name) {
		return fmt.Errorf("credential %q: %w", name, ErrNotFound)
	}
	for {
		set, err := m.st.GetSetting(ctx, credKey(org, name))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("credential %q: %w", name, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("credential %q: %w", name, err)
		}
		err = m.st.DeleteSetting(ctx, set.Key, set.Version)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("credential %q: %w", name, ErrNotFound)
		}
		return err
	}
}

// ListCredentials names org's credentials.
func (m *Manager) ListCredentials(ctx context.Context, org string) ([]CredentialInfo, error) {
	sets, err := m.st.ListSettings(ctx, prefixCred+org+".")
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	out := []CredentialInfo{}
	for _, set := range sets {
		var sc storedCredential
		if err := json.Unmarshal(set.Value, &sc); err != nil {
			return nil, fmt.Errorf("credential %s: %w", set.Key, err)
		}
		out = append(out, CredentialInfo{Name: strings.TrimPrefix(set.Key, prefixCred+org+"."), Username: sc.Username})
	}
	return out, nil
}

// credential opens org's credential name (ErrNotFound, wrapped in
// ErrInvalid's message for Put).
func (m *Manager) credential(ctx context.Context, org, name string) (*Credential, error) {
	key := credKey(org, name)
	set, err := m.st.GetSetting(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("credentials.secret: organisation %s has no git credential %q (create it with PUT /v1/orgs/%s/git/credentials/%s): %w",
			org, name, org, name, ErrInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("credential %q: %w", name, err)
	}
	var sc storedCredential
	if err := json.Unmarshal(set.Value, &sc); err != nil {
		return nil, fmt.Errorf("credential %q: %w", name, err)
	}
	plain, err := m.seal.open(key, sc.Sealed)
	if err != nil {
		return nil, fmt.Errorf("credential %q: %w", name, err)
	}
	var c Credential
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, fmt.Errorf("credential %q: %w", name, err)
	}
	return &c, nil
}
