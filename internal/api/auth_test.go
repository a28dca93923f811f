package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/aipress/aipress/internal/oidclogin"
	"github.com/aipress/aipress/internal/password"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// mailbox is a Mailer that keeps what it is given.
type mailbox struct {
	mu   sync.Mutex
	mail []Mail
}

func (m *mailbox) Send(_ context.Context, x Mail) error {
	m.mu.Lock()
	m.mail = append(m.mail, x)
	m.mu.Unlock()
	return nil
}

func (m *mailbox) last(t *testing.T) Mail {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.mail) == 0 {
		t.Fatal("no mail sent")
	}
	return m.mail[len(m.mail)-1]
}

type authEnv struct {
	st      store.Store
	acc     store.Accounts
	h       http.Handler
	clk     *fakeClock
	mail    *mailbox
	hasher  *password.Hasher
	idp     *mockoidc.MockOIDC
	adminID string
}

const goodPassword = "correct horse battery staple"

func newAuthEnv(t *testing.T, mod func(*AuthConfig)) *authEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var acc store.Accounts = st
	hasher, err := password.New(password.Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	e := &authEnv{st: st, acc: acc, clk: &fakeClock{now: testNow}, mail: &mailbox{}, hasher: hasher}
	cfg := AuthConfig{Passwords: hasher, Mailer: e.mail, IPRate: -1, EmailRate: -1}
	if mod != nil {
		mod(&cfg)
	}
	e.h = New(Config{Store: st, Clock: e.clk.Now, Version: "test", Auth: cfg})
	return e
}

// withOIDC starts a real OIDC provider and configures the API with it.
func withOIDC(t *testing.T, e **authEnv, mod func(*AuthConfig)) {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	cfg := m.Config()
	p, err := oidclogin.New(context.Background(), oidclogin.Config{IssuerURL: cfg.Issuer, ClientID: cfg.ClientID,
		ClientSecret: cfg.ClientSecret, RedirectURL: "http://127.0.0.1:7070/v1/auth/oidc/callback"})
	if err != nil {
		t.Fatal(err)
	}
	*e = newAuthEnv(t, func(c *AuthConfig) {
		c.OIDC = p
		if mod != nil {
			mod(c)
		}
	})
	(*e).idp = m
}

func (e *authEnv) user(t *testing.T, email, pw string, role store.Role) *store.User {
	t.Helper()
	u := &store.User{ID: "usr-t-" + strings.Split(email, "@")[0], Email: email, PlatformRole: role, CreatedAt: testNow}
	if pw != "" {
		var err error
		if u.PasswordHash, err = e.hasher.Hash(pw); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.acc.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

func (e *authEnv) org(t *testing.T, name string) {
	t.Helper()
	if err := e.acc.CreateOrg(context.Background(), &store.Org{Name: name, DisplayName: name, Kind: store.OrgCustomer, CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
}

func (e *authEnv) invite(t *testing.T, org, email string, role store.OrgRole) string {
	t.Helper()
	secret := "aipi_" + strings.Repeat("ab", 12) + org + email
	if err := e.acc.CreateInvite(context.Background(), store.Invite{ID: "inv-" + org + "-" + strings.Split(email, "@")[0], Org: org, Email: email,
		Role: role, Hash: store.TokenHash(secret), CreatedBy: "tok-admin", CreatedAt: testNow, ExpiresAt: testNow.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return secret
}

// req describes one request.
type req struct {
	method, path string
	body         any
	bearer       string
	cookie       *http.Cookie
	header       map[string]string
	remote       string // RemoteAddr (default 127.0.0.1:40000)
	host         string
}

func (e *authEnv) do(t *testing.T, r req) *httptest.ResponseRecorder {
	t.Helper()
	var b []byte
	switch v := r.body.(type) {
	case nil:
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	hr := httptest.NewRequest(r.method, r.path, bytes.NewReader(b))
	hr.Host = "127.0.0.1:7070"
	if r.host != "" {
		hr.Host = r.host
	}
	hr.RemoteAddr = "127.0.0.1:40000"
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	if r.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	if r.cookie != nil {
		hr.AddCookie(r.cookie)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, hr)
	return rec
}

func cookieOf(t *testing.T, rec *httptest.ResponseRecorder, name string) *http.Cookie {
	t.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no cookie %s in %v (status %d, %s)", name, rec.Header()["Set-Cookie"], rec.Code, rec.Body)
	return nil
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body, err)
	}
	return v
}

func recCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	return decode[ErrorBody](t, rec).Error.Code
}

func login(email, pw string) req {
	return req{method: "POST", path: "/v1/auth/login", body: LoginRequest{Email: email, Password: pw}}
}

func (e *authEnv) lastAudit(t *testing.T) store.AuditEntry {
	t.Helper()
	head, err := e.st.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.st.ListAudit(context.Background(), store.AuditListOptions{AfterSeq: head.Seq - 1, Limit: 1})
	if err != nil || len(a) == 0 {
		t.Fatalf("audit: %v %v", a, err)
	}
	return a[0]
}

func TestSignup(t *testing.T) {
	closed := newAuthEnv(t, nil)
	rec := closed.do(t, req{method: "POST", path: "/v1/auth/signup", body: SignupRequest{Email: "ann@example.com", Password: goodPassword}})
	if rec.Code != 403 {
		t.Fatalf("sign-up when closed: %d %s", rec.Code, rec.Body)
	}

	e := newAuthEnv(t, func(c *AuthConfig) { c.OpenSignup = true })
	for _, tc := range []struct {
		name string
		body SignupRequest
		want int
	}{
		{"short password", SignupRequest{Email: "ann@example.com", Password: "short"}, 400},
		{"password is e-mail", SignupRequest{Email: "ann.longname@example.com", Password: "ann.longname@example.com"}, 400},
		{"bad e-mail", SignupRequest{Email: "not an address", Password: goodPassword}, 400},
		{"bad org", SignupRequest{Email: "ann@example.com", Password: goodPassword, Org: "Bad Org"}, 400},
		{"ok", SignupRequest{Email: "Ann@Example.com", Password: goodPassword, Org: "ann-co"}, 201},
		{"e-mail taken", SignupRequest{Email: "ann@example.com", Password: goodPassword, Org: "ann-co2"}, 409},
		{"org taken", SignupRequest{Email: "bob@example.com", Password: goodPassword, Org: "ann-co"}, 409},
		{"org from e-mail", SignupRequest{Email: "carl.o@example.com", Password: goodPassword}, 201},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do(t, req{method: "POST", path: "/v1/auth/signup", body: tc.body})
			if rec.Code != tc.want {
				t.Fatalf("%d %s, want %d", rec.Code, rec.Body, tc.want)
			}
			if tc.want != 201 {
				return
			}
			c := cookieOf(t, rec, SessionCookie)
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure {
				t.Errorf("session cookie on plain loopback HTTP: %+v", c)
			}
			got := decode[LoginResponse](t, rec)
			if got.Token != "" || got.Kind != store.TokenSession {
				t.Errorf("session answer carries a secret or wrong kind: %+v", got)
			}
			ms, err := e.acc.ListMemberships(context.Background(), store.MembershipFilter{UserID: got.User.ID})
			if err != nil || len(ms) != 1 || ms[0].Role != store.OrgOwner {
				t.Fatalf("memberships %v %v", ms, err)
			}
			if tc.body.Org != "" && ms[0].Org != tc.body.Org {
				t.Errorf("org %q, want %q", ms[0].Org, tc.body.Org)
			}
			if a := e.lastAudit(t); a.Action != "auth.signup" || a.Outcome != "success" || a.Actor != got.User.ID {
				t.Errorf("audit %+v", a)
			}
		})
	}
	// The user with the taken org was not left behind: bob may sign up.
	if rec := e.do(t, req{method: "POST", path: "/v1/auth/signup", body: SignupRequest{Email: "bob@example.com", Password: goodPassword}}); rec.Code != 201 {
		t.Fatalf("retry after a taken org: %d %s", rec.Code, rec.Body)
	}
}

func TestLoginAndLogout(t *testing.T) {
	e := newAuthEnv(t, nil)
	e.user(t, "admin@example.com", goodPassword, store.RoleAdmin)
	e.user(t, "oidc-only@example.com", "", "")
	wrong := e.do(t, login("admin@example.com", "wrong password!!"))
	for _, tc := range []struct {
		name   string
		r      req
		want   int
		reason string
	}{
		{"right", login("Admin@Example.com ", goodPassword), 200, "password"},
		{"wrong password", login("admin@example.com", "wrong password!!"), 401, "wrong password"},
		{"unknown e-mail", login("nobody@example.com", goodPassword), 401, "unknown e-mail"},
		{"no password set", login("oidc-only@example.com", goodPassword), 401, "no password"},
		{"empty", login("", ""), 400, ""},
		{"unknown field", req{method: "POST", path: "/v1/auth/login", body: `{"email":"a@b.c","password":"x","admin":true}`}, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do(t, tc.r)
			if rec.Code != tc.want {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if tc.want == 401 && rec.Body.String() != wrong.Body.String() {
				t.Errorf("failure answer tells cases apart:\n%s\nvs\n%s", rec.Body, wrong.Body)
			}
			if tc.reason != "" {
				if a := e.lastAudit(t); a.Action != "auth.login" || !strings.Contains(a.Detail, tc.reason) {
					t.Errorf("audit %+v, want detail with %q", a, tc.reason)
				}
			}
		})
	}

	// A session cookie authenticates, and logout ends it.
	rec := e.do(t, login("admin@example.com", goodPassword))
	c := cookieOf(t, rec, SessionCookie)
	if rec := e.do(t, req{method: "GET", path: "/v1/whoami", cookie: c}); rec.Code != 200 {
		t.Fatalf("whoami with the session: %d %s", rec.Code, rec.Body)
	}
	rec = e.do(t, req{method: "POST", path: "/v1/auth/logout", cookie: c})
	if rec.Code != 204 || cookieOf(t, rec, SessionCookie).MaxAge >= 0 {
		t.Fatalf("logout: %d %v", rec.Code, rec.Header())
	}
	if rec := e.do(t, req{method: "GET", path: "/v1/whoami", cookie: c}); rec.Code != 401 {
		t.Fatalf("whoami after logout: %d", rec.Code)
	}

	// {"token":true} answers with a bearer token, not a cookie.
	rec = e.do(t, req{method: "POST", path: "/v1/auth/login", body: LoginRequest{Email: "admin@example.com", Password: goodPassword, Token: true, Name: "ci"}})
	got := decode[LoginResponse](t, rec)
	if rec.Code != 200 || !strings.HasPrefix(got.Token, store.TokenPrefix) || len(rec.Result().Cookies()) != 0 || got.Kind != store.TokenAPI {
		t.Fatalf("token login: %d %+v", rec.Code, got)
	}
	if rec := e.do(t, req{method: "GET", path: "/v1/sites", bearer: got.Token}); rec.Code != 200 {
		t.Fatalf("admin user's token on GET /v1/sites: %d %s", rec.Code, rec.Body)
	}
	// An API token is no session: refused in the cookie.
	if rec := e.do(t, req{method: "GET", path: "/v1/whoami", cookie: &http.Cookie{Name: SessionCookie, Value: got.Token}}); rec.Code != 401 {
		t.Fatalf("API token in the session cookie: %d", rec.Code)
	}
	// Sessions expire.
	rec = e.do(t, login("admin@example.com", goodPassword))
	c = cookieOf(t, rec, SessionCookie)
	e.clk.add(DefaultSessionTTL)
	if rec := e.do(t, req{method: "GET", path: "/v1/whoami", cookie: c}); rec.Code != 401 {
		t.Fatalf("expired session: %d", rec.Code)
	}
}

func TestSecureCookie(t *testing.T) {
	e := newAuthEnv(t, nil)
	e.user(t, "ann@example.com", goodPassword, "")
	for host, secure := range map[string]bool{"127.0.0.1:7070": false, "localhost:7070": false, "[::1]:7070": false,
		"api.example.com": true, "10.1.2.3:7070": true} {
		r := login("ann@example.com", goodPassword)
		r.host = host
		if c := cookieOf(t, e.do(t, r), SessionCookie); c.Secure != secure {
			t.Errorf("host %s: Secure = %v, want %v", host, c.Secure, secure)
		}
	}
}

func TestLockout(t *testing.T) {
	e := newAuthEnv(t, nil)
	e.user(t, "ann@example.com", goodPassword, "")
	for i := range DefaultLockoutThreshold {
		if rec := e.do(t, login("ann@example.com", "wrong password!!")); rec.Code != 401 {
			t.Fatalf("failure %d: %d", i, rec.Code)
		}
	}
	if a := e.lastAudit(t); !strings.Contains(a.Detail, "locked") {
		t.Errorf("5th failure's audit %+v does not say locked", a)
	}
	wrong := e.do(t, login("ann@example.com", "wrong password!!"))
	locked := e.do(t, login("ann@example.com", goodPassword))
	if locked.Code != 401 || locked.Body.String() != wrong.Body.String() {
		t.Fatalf("right password while locked: %d %s", locked.Code, locked.Body)
	}
	e.clk.add(DefaultLockoutDuration - time.Second)
	if rec := e.do(t, login("ann@example.com", goodPassword)); rec.Code != 401 {
		t.Fatalf("before the window ends: %d", rec.Code)
	}
	e.clk.add(time.Second)
	if rec := e.do(t, login("ann@example.com", goodPassword)); rec.Code != 200 {
		t.Fatalf("after the window: %d %s", rec.Code, rec.Body)
	}
	u, err := e.acc.GetUserByEmail(context.Background(), "ann@example.com")
	if err != nil || u.FailedLogins != 0 || u.LockedUntil != nil || u.LastLoginAt == nil {
		t.Fatalf("after a sign-in: %+v %v", u, err)
	}
	// Four failures and a success do not lock: the count is of consecutive failures.
	for range DefaultLockoutThreshold - 1 {
		e.do(t, login("ann@example.com", "wrong password!!"))
	}
	e.do(t, login("ann@example.com", goodPassword))
	e.do(t, login("ann@example.com", "wrong password!!"))
	if rec := e.do(t, login("ann@example.com", goodPassword)); rec.Code != 200 {
		t.Fatalf("non-consecutive failures locked: %d", rec.Code)
	}
}

func TestLoginRehash(t *testing.T) {
	e := newAuthEnv(t, nil)
	old, err := password.New(password.Params{Memory: 32, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	u := &store.User{ID: "usr-ann", Email: "ann@example.com", CreatedAt: testNow}
	u.PasswordHash, _ = old.Hash(goodPassword)
	if err := e.acc.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	if rec := e.do(t, login("ann@example.com", goodPassword)); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	got, _ := e.acc.GetUser(context.Background(), "usr-ann")
	if e.hasher.NeedsRehash(got.PasswordHash) || password.Verify(got.PasswordHash, goodPassword) != nil {
		t.Errorf("hash not upgraded to the current parameters: %s", got.PasswordHash)
	}
}

func TestAuthRateLimit(t *testing.T) {
	e := newAuthEnv(t, func(c *AuthConfig) { c.IPRate, c.IPBurst, c.EmailRate, c.EmailBurst = 1, 6, 0.1, 3 })
	e.user(t, "ann@example.com", goodPassword, "")
	for i := range 3 {
		if rec := e.do(t, login("ann@example.com", "wrong password!!")); rec.Code != 401 {
			t.Fatalf("attempt %d: %d", i, rec.Code)
		}
	}
	rec := e.do(t, login("ann@example.com", goodPassword))
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "10" || recCode(t, rec) != CodeRateLimited {
		t.Fatalf("4th attempt for one e-mail: %d Retry-After %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if a := e.lastAudit(t); a.Outcome != CodeRateLimited {
		t.Errorf("rate-limited attempt audited as %+v", a)
	}
	// Another e-mail from the same IP: its own bucket, until the IP's runs out.
	for i := range 2 {
		if rec := e.do(t, login("bob@example.com", "wrong password!!")); rec.Code != 401 {
			t.Fatalf("other e-mail %d: %d", i, rec.Code)
		}
	}
	if rec := e.do(t, login("carl@example.com", "wrong password!!")); rec.Code != 429 || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("7th request from one IP: %d %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	other := login("carl@example.com", "wrong password!!")
	other.remote = "127.0.0.9:5555"
	if rec := e.do(t, other); rec.Code != 401 {
		t.Fatalf("another IP: %d", rec.Code)
	}
	e.clk.add(10 * time.Second)
	if rec := e.do(t, login("ann@example.com", goodPassword)); rec.Code != 200 {
		t.Fatalf("after the wait: %d %s", rec.Code, rec.Body)
	}
}

var resetTokenRE = regexp.MustCompile(`reset-password#(aipr_[0-9a-f]+)`)

func TestPasswordReset(t *testing.T) {
	e := newAuthEnv(t, nil)
	e.user(t, "ann@example.com", goodPassword, "")
	session := cookieOf(t, e.do(t, login("ann@example.com", goodPassword)), SessionCookie)

	if rec := e.do(t, req{method: "POST", path: "/v1/auth/password-reset", body: PasswordResetRequest{Email: "nobody@example.com"}}); rec.Code != 202 {
		t.Fatalf("unknown e-mail: %d", rec.Code)
	}
	if len(e.mail.mail) != 0 {
		t.Fatalf("mail for an unknown e-mail: %+v", e.mail.mail)
	}
	ask := func() string {
		t.Helper()
		if rec := e.do(t, req{method: "POST", path: "/v1/auth/password-reset", body: PasswordResetRequest{Email: "ANN@example.com"}}); rec.Code != 202 {
			t.Fatalf("reset: %d %s", rec.Code, rec.Body)
		}
		m := e.mail.last(t)
		sub := resetTokenRE.FindStringSubmatch(m.Body)
		if m.To != "ann@example.com" || sub == nil || !strings.Contains(m.Body, "http://127.0.0.1:7070/reset-password#") {
			t.Fatalf("mail %+v", m)
		}
		return sub[1]
	}
	tok := ask()
	confirm := func(token, pw string) *httptest.ResponseRecorder {
		return e.do(t, req{method: "POST", path: "/v1/auth/password-reset/confirm", body: PasswordResetConfirmRequest{Token: token, NewPassword: pw}})
	}
	const newPassword = "a much better passphrase"
	for _, tc := range []struct {
		name  string
		token string
		pw    string
		want  int
	}{
		{"weak password keeps the token", tok, "short", 400},
		{"unknown token", "aipr_00", newPassword, 400},
		{"ok", tok, newPassword, 200},
		{"used twice", tok, newPassword + "x", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rec := confirm(tc.token, tc.pw); rec.Code != tc.want {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
		})
	}
	if rec := e.do(t, req{method: "GET", path: "/v1/whoami", cookie: session}); rec.Code != 401 {
		t.Errorf("session from before the reset still works: %d", rec.Code)
	}
	if rec := e.do(t, login("ann@example.com", goodPassword)); rec.Code != 401 {
		t.Errorf("old password still works: %d", rec.Code)
	}
	if rec := e.do(t, login("ann@example.com", newPassword)); rec.Code != 200 {
		t.Errorf("new password: %d", rec.Code)
	}
	// An expired token is refused.
	tok = ask()
	e.clk.add(DefaultResetTTL + time.Second)
	if rec := confirm(tok, "yet another passphrase"); rec.Code != 400 {
		t.Errorf("expired token: %d", rec.Code)
	}
	if a := e.lastAudit(t); a.Action != "auth.password-reset.confirm" || a.Outcome != CodeInvalidArgument {
		t.Errorf("audit %+v", a)
	}
}

func TestLogMailer(t *testing.T) {
	dir := t.TempDir()
	m := LogMailer{Dir: dir, Clock: func() time.Time { return testNow }}
	if err := m.Send(context.Background(), Mail{To: "Ann@Example.com", Subject: "s", Body: "link"}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*-ann@example.com-*.eml"))
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), "To: Ann@Example.com\r\n") || !strings.HasSuffix(string(b), "link\r\n") {
		t.Errorf("mail file %q", b)
	}
}

func TestAcceptInvite(t *testing.T) {
	e := newAuthEnv(t, nil)
	e.org(t, "acme")
	e.user(t, "old@example.com", goodPassword, "")
	newInv := e.invite(t, "acme", "new@example.com", store.OrgDeveloper)
	oldInv := e.invite(t, "acme", "old@example.com", store.OrgViewer)
	rec := e.do(t, req{method: "POST", path: "/v1/auth/login", body: LoginRequest{Email: "old@example.com", Password: goodPassword, Token: true, Name: "t"}})
	oldSignIn := decode[LoginResponse](t, rec).Token
	if oldSignIn == "" {
		t.Fatalf("sign-in: %d %s", rec.Code, rec.Body)
	}
	for _, tc := range []struct {
		name     string
		body     AcceptInviteRequest
		want     int
		signedIn bool
		bearer   string
	}{
		{"new user without password keeps the invitation", AcceptInviteRequest{Token: newInv}, 400, false, ""},
		{"weak password keeps the invitation", AcceptInviteRequest{Token: newInv, Password: "short"}, 400, false, ""},
		{"password is the e-mail keeps the invitation", AcceptInviteRequest{Token: newInv, Password: "new@example.com"}, 400, false, ""},
		{"unknown", AcceptInviteRequest{Token: "nope", Password: goodPassword}, 400, false, ""},
		{"new user", AcceptInviteRequest{Token: newInv, Password: goodPassword, Name: "New"}, 200, true, ""},
		{"again", AcceptInviteRequest{Token: newInv, Password: goodPassword}, 409, false, ""},
		{"an existing user's invitation needs that user's sign-in", AcceptInviteRequest{Token: oldInv}, 401, false, ""},
		{"nor does another user's sign-in do", AcceptInviteRequest{Token: oldInv}, 401, false, "NEW"},
		{"existing user joins, signed in", AcceptInviteRequest{Token: oldInv}, 200, false, oldSignIn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bearer == "NEW" {
				rec := e.do(t, req{method: "POST", path: "/v1/auth/login", body: LoginRequest{Email: "new@example.com", Password: goodPassword, Token: true, Name: "t"}})
				tc.bearer = decode[LoginResponse](t, rec).Token
			}
			rec := e.do(t, req{method: "POST", path: "/v1/invites/accept", body: tc.body, bearer: tc.bearer})
			if rec.Code != tc.want {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if tc.want != 200 {
				return
			}
			got := decode[AcceptInviteResponse](t, rec)
			if got.Org != "acme" || got.SignedIn != tc.signedIn || (len(rec.Result().Cookies()) > 0) != tc.signedIn {
				t.Errorf("answer %+v cookies %v", got, rec.Result().Cookies())
			}
			ms, err := e.acc.ListMemberships(context.Background(), store.MembershipFilter{Org: "acme", UserID: got.User.ID})
			if err != nil || len(ms) != 1 || ms[0].Role != got.Role {
				t.Errorf("membership %v %v", ms, err)
			}
		})
	}
	if rec := e.do(t, login("new@example.com", goodPassword)); rec.Code != 200 {
		t.Errorf("invited user's password: %d", rec.Code)
	}
	if rec := e.do(t, login("old@example.com", goodPassword)); rec.Code != 200 {
		t.Errorf("existing user's password changed by joining: %d", rec.Code)
	}
	if a := e.lastAudit(t); a.Action != "auth.login" {
		t.Errorf("last audit %+v", a)
	}
}

// oidcSignIn runs a browser's OIDC sign-in: start, the provider's
// authorization (as user), the callback. It returns the callback's answer.
func (e *authEnv) oidcSignIn(t *testing.T, startQuery string, user *mockoidc.MockUser, tamper func(*url.URL)) *httptest.ResponseRecorder {
	t.Helper()
	rec := e.do(t, req{method: "GET", path: "/v1/auth/oidc/start?" + startQuery})
	if rec.Code != http.StatusFound {
		t.Fatalf("start: %d %s", rec.Code, rec.Body)
	}
	flow := cookieOf(t, rec, oidclogin.CookieName)
	e.idp.QueueUser(user)
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Get(rec.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || back.Path != "/v1/auth/oidc/callback" {
		t.Fatalf("provider redirect %q %v", resp.Header.Get("Location"), err)
	}
	if tamper != nil {
		tamper(back)
	}
	return e.do(t, req{method: "GET", path: back.RequestURI(), cookie: flow})
}

func TestOIDCSignIn(t *testing.T) {
	var e *authEnv
	withOIDC(t, &e, nil)
	e.org(t, "acme")
	pw := e.user(t, "pw@example.com", goodPassword, "")
	if _, err := e.acc.UpdateUser(context.Background(), pw.ID, func(u *store.User) error { u.EmailVerified = true; return nil }); err != nil {
		t.Fatal(err)
	}
	e.user(t, "signedup@example.com", goodPassword, "") // open sign-up: address never proven
	e.user(t, "root@example.com", "", store.RoleAdmin)
	inv := e.invite(t, "acme", "invited@example.com", store.OrgDeveloper)
	other := e.invite(t, "acme", "someone@example.com", store.OrgViewer)
	verified := func(sub, email string) *mockoidc.MockUser {
		return &mockoidc.MockUser{Subject: sub, Email: email, EmailVerified: true}
	}
	for _, tc := range []struct {
		name   string
		query  string
		user   *mockoidc.MockUser
		tamper func(*url.URL)
		want   int
		email  string // the user signed in
	}{
		{"no account", "", verified("s-0", "stranger@example.com"), nil, 403, ""},
		{"new user via invitation", "invite=" + url.QueryEscape(inv) + "&return_to=/portal", verified("s-1", "Invited@example.com"), nil, 303, "invited@example.com"},
		{"existing identity", "", verified("s-1", "changed@example.com"), nil, 303, "invited@example.com"},
		{"existing user linked by verified e-mail", "", verified("s-2", "pw@example.com"), nil, 303, "pw@example.com"},
		{"an account whose address was never proven is not linked", "", verified("s-6", "signedup@example.com"), nil, 403, ""},
		{"a platform account is not linked by e-mail", "", verified("s-7", "root@example.com"), nil, 403, ""},
		{"unverified e-mail refused", "", &mockoidc.MockUser{Subject: "s-3", Email: "someone@example.com"}, nil, 403, ""},
		{"invitation for another e-mail", "invite=" + url.QueryEscape(other), verified("s-4", "mallory@example.com"), nil, 403, ""},
		{"invitation kept after the refusal", "invite=" + url.QueryEscape(other), verified("s-4", "someone@example.com"), nil, 303, "someone@example.com"},
		{"bad state refused", "", verified("s-1", "invited@example.com"), func(u *url.URL) {
			q := u.Query()
			q.Set("state", "forged")
			u.RawQuery = q.Encode()
		}, 400, ""},
		{"e-mail already linked to another identity", "", verified("s-5", "pw@example.com"), nil, 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.oidcSignIn(t, tc.query, tc.user, tc.tamper)
			if rec.Code != tc.want {
				t.Fatalf("callback: %d %s", rec.Code, rec.Body)
			}
			a := e.lastAudit(t)
			if a.Action != "auth.login.oidc" {
				t.Errorf("audit %+v", a)
			}
			if tc.want != 303 {
				return
			}
			wantLoc := "/"
			if strings.Contains(tc.query, "return_to") {
				wantLoc = "/portal"
			}
			if loc := rec.Header().Get("Location"); loc != wantLoc {
				t.Errorf("Location %q, want %q", loc, wantLoc)
			}
			if c := cookieOf(t, rec, oidclogin.CookieName); c.MaxAge >= 0 {
				t.Errorf("flow cookie not cleared: %+v", c)
			}
			s := cookieOf(t, rec, SessionCookie)
			tok, err := e.st.LookupToken(context.Background(), store.TokenHash(s.Value))
			if err != nil {
				t.Fatal(err)
			}
			u, err := e.acc.GetUser(context.Background(), tok.UserID)
			if err != nil || u.Email != tc.email || u.OIDCSubject != tc.user.Subject || u.OIDCIssuer != e.idp.Issuer() {
				t.Fatalf("signed in as %+v %v, want %s linked to %s", u, err, tc.email, tc.user.Subject)
			}
			if a.Actor != u.ID || a.Outcome != "success" {
				t.Errorf("audit %+v", a)
			}
		})
	}
	ms, err := e.acc.ListMemberships(context.Background(), store.MembershipFilter{Org: "acme"})
	if err != nil || len(ms) != 2 {
		t.Errorf("acme's members after the invitations: %+v %v", ms, err)
	}
}

func TestOIDCSignup(t *testing.T) {
	var e *authEnv
	withOIDC(t, &e, func(c *AuthConfig) { c.OpenSignup, c.OIDCSignup = true, true })
	rec := e.oidcSignIn(t, "", &mockoidc.MockUser{Subject: "s-9", Email: "new@example.com", EmailVerified: true}, nil)
	if rec.Code != 303 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	u, err := e.acc.GetUserByOIDC(context.Background(), e.idp.Issuer(), "s-9")
	if err != nil || u.PasswordHash != "" {
		t.Fatalf("%+v %v", u, err)
	}
	ms, _ := e.acc.ListMemberships(context.Background(), store.MembershipFilter{UserID: u.ID})
	if len(ms) != 1 || ms[0].Role != store.OrgOwner {
		t.Errorf("memberships %+v", ms)
	}
}

func TestOIDCNotConfigured(t *testing.T) {
	e := newAuthEnv(t, nil)
	if rec := e.do(t, req{method: "GET", path: "/v1/auth/oidc/start"}); rec.Code != 501 {
		t.Fatalf("%d", rec.Code)
	}
}

func TestDeviceFlow(t *testing.T) {
	e := newAuthEnv(t, nil)
	e.user(t, "admin@example.com", goodPassword, store.RoleAdmin)
	rec := e.do(t, req{method: "POST", path: "/v1/auth/device", body: DeviceRequest{Name: "laptop"}})
	if rec.Code != 200 {
		t.Fatalf("start: %d %s", rec.Code, rec.Body)
	}
	d := decode[DeviceResponse](t, rec)
	if !regexp.MustCompile(`^[B-Z]{4}-[B-Z]{4}$`).MatchString(d.UserCode) || d.Interval != 5 || d.ExpiresIn != 600 ||
		d.VerificationURI != "http://127.0.0.1:7070/device" {
		t.Fatalf("device answer %+v", d)
	}
	poll := func() *httptest.ResponseRecorder {
		return e.do(t, req{method: "POST", path: "/v1/auth/device/token", body: DeviceTokenRequest{DeviceCode: d.DeviceCode}})
	}
	expect := func(rec *httptest.ResponseRecorder, code string) {
		t.Helper()
		if rec.Code != 400 || recCode(t, rec) != code {
			t.Fatalf("poll: %d %s, want %s", rec.Code, rec.Body, code)
		}
	}
	expect(poll(), CodeAuthorizationPending)
	expect(poll(), CodeSlowDown) // no wait
	e.clk.add(10 * time.Second)  // the interval is 10 s now
	expect(poll(), CodeAuthorizationPending)

	session := cookieOf(t, e.do(t, login("admin@example.com", goodPassword)), SessionCookie)
	approve := func(code string, c *http.Cookie, bearer string) *httptest.ResponseRecorder {
		return e.do(t, req{method: "POST", path: "/v1/auth/device/approve", body: DeviceApproveRequest{UserCode: code}, cookie: c, bearer: bearer})
	}
	if rec := approve(d.UserCode, nil, ""); rec.Code != 401 {
		t.Fatalf("approve without signing in: %d", rec.Code)
	}
	if rec := approve("BBBB-BBBB", session, ""); rec.Code != 404 {
		t.Fatalf("approve a wrong code: %d", rec.Code)
	}
	if rec := approve(strings.ToLower(d.UserCode), session, ""); rec.Code != 200 {
		t.Fatalf("approve: %d %s", rec.Code, rec.Body)
	}
	if a := e.lastAudit(t); a.Action != "auth.device.approve" || a.Outcome != "success" {
		t.Errorf("audit %+v", a)
	}
	e.clk.add(10 * time.Second)
	rec = poll()
	got := decode[LoginResponse](t, rec)
	if rec.Code != 200 || got.Kind != store.TokenAPI || got.User.Email != "admin@example.com" {
		t.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	tok, err := e.st.LookupToken(context.Background(), store.TokenHash(got.Token))
	if err != nil || tok.Name != "laptop" || tok.UserID != "usr-t-admin" {
		t.Fatalf("token %+v %v", tok, err)
	}
	if rec := e.do(t, req{method: "GET", path: "/v1/sites", bearer: got.Token}); rec.Code != 200 {
		t.Fatalf("the CLI's token: %d", rec.Code)
	}
	e.clk.add(10 * time.Second)
	expect(poll(), CodeExpiredToken) // handed out once
	if a := e.lastAudit(t); a.Action != "auth.login.device" {
		t.Errorf("audit %+v", a)
	}

	// A machine token cannot approve; an unapproved code expires.
	rec = e.do(t, req{method: "POST", path: "/v1/auth/device"})
	d = decode[DeviceResponse](t, rec)
	if err := e.st.CreateToken(context.Background(), store.Token{ID: "tok-m", Name: "m", Role: store.RoleAdmin, Hash: store.TokenHash("machine"), CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	if rec := approve(d.UserCode, nil, "machine"); rec.Code != 403 {
		t.Fatalf("machine token approves: %d", rec.Code)
	}
	e.clk.add(DefaultDeviceTTL)
	expect(poll(), CodeExpiredToken)
	if rec := approve(d.UserCode, session, ""); rec.Code != 404 {
		t.Fatalf("approve an expired code: %d", rec.Code)
	}
}

func TestCSRF(t *testing.T) {
	e := newAuthEnv(t, nil)
	e.user(t, "admin@example.com", goodPassword, store.RoleAdmin)
	session := cookieOf(t, e.do(t, login("admin@example.com", goodPassword)), SessionCookie)
	rec := e.do(t, req{method: "POST", path: "/v1/auth/login", body: LoginRequest{Email: "admin@example.com", Password: goodPassword, Token: true}})
	bearer := decode[LoginResponse](t, rec).Token
	cross := map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
	for _, tc := range []struct {
		name string
		r    req
		want int
	}{
		{"cross-origin cookie POST", req{method: "POST", path: "/v1/auth/logout", cookie: session, header: cross}, 403},
		{"cross-origin Origin only", req{method: "POST", path: "/v1/auth/logout", cookie: session, header: map[string]string{"Origin": "https://evil.example"}}, 403},
		{"cross-origin login (login CSRF)", req{method: "POST", path: "/v1/auth/login", body: LoginRequest{Email: "admin@example.com", Password: goodPassword}, header: cross}, 403},
		{"cross-origin cookie GET", req{method: "GET", path: "/v1/whoami", cookie: session, header: cross}, 200},
		{"cross-origin bearer POST", req{method: "POST", path: "/v1/sites", bearer: bearer, header: cross, body: `{}`}, 400},
		{"same-origin cookie POST", req{method: "POST", path: "/v1/auth/logout", cookie: session, header: map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:7070"}}, 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rec := e.do(t, tc.r); rec.Code != tc.want {
				t.Fatalf("%d %s, want %d", rec.Code, rec.Body, tc.want)
			}
		})
	}
}

func TestKeyedLimiterBounded(t *testing.T) {
	l := newKeyedLimiter(1, 2, 10)
	now := testNow
	for i := range 100 {
		if ok, _ := l.allow(string(rune('a'+i%26))+strings.Repeat("x", i), now); !ok {
			t.Fatalf("new key %d refused", i)
		}
	}
	if len(l.buckets) > 10 {
		t.Fatalf("%d buckets, bound 10", len(l.buckets))
	}
	var none *keyedLimiter
	if ok, _ := none.allow("k", now); !ok {
		t.Error("nil limiter refuses")
	}
}

// TestResetEndsSignIns: a password reset ends the user's sign-ins and
// platform tokens; on an account whose address was never proven (made by
// open sign-up: perhaps by someone else) it ends every token, and it
// marks the address proven.
func TestResetEndsSignIns(t *testing.T) {
	e := newAuthEnv(t, nil)
	e.org(t, "acme")
	u := e.user(t, "bo@example.com", goodPassword, "")
	ctx := context.Background()
	if err := e.acc.PutMembership(ctx, store.Membership{Org: "acme", UserID: u.ID, Role: store.OrgOwner, CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	mkTokens := func() {
		t.Helper()
		for _, tk := range []store.Token{
			{ID: "tok-user", Role: store.RoleUser},
			{ID: "tok-ci", Role: store.Role(store.OrgDeveloper), Org: "acme"},
		} {
			tk.Name, tk.UserID, tk.Hash, tk.CreatedAt = tk.ID, u.ID, store.TokenHash("s-"+tk.ID), testNow
			if err := e.st.CreateToken(ctx, tk); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
				t.Fatal(err)
			}
		}
	}
	reset := func() {
		t.Helper()
		if rec := e.do(t, req{method: "POST", path: "/v1/auth/password-reset", body: PasswordResetRequest{Email: "bo@example.com"}}); rec.Code != 202 {
			t.Fatalf("reset: %d", rec.Code)
		}
		tok := resetTokenRE.FindStringSubmatch(e.mail.last(t).Body)[1]
		if rec := e.do(t, req{method: "POST", path: "/v1/auth/password-reset/confirm", body: PasswordResetConfirmRequest{Token: tok, NewPassword: "a much better passphrase"}}); rec.Code != 200 {
			t.Fatalf("confirm: %d %s", rec.Code, rec.Body)
		}
	}
	left := func() []string {
		toks, err := e.st.ListTokens(ctx, store.TokenFilter{UserID: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, tk := range toks {
			ids = append(ids, tk.ID)
		}
		return ids
	}
	mkTokens()
	reset()
	if ids := left(); len(ids) != 0 {
		t.Errorf("after the first reset of an unproven address: tokens %v left, want none", ids)
	}
	if got, _ := e.acc.GetUser(ctx, u.ID); !got.EmailVerified {
		t.Error("the reset did not mark the address proven")
	}
	mkTokens()
	reset()
	if ids := left(); !slices.Equal(ids, []string{"tok-ci"}) {
		t.Errorf("after a reset of a proven address: tokens %v left, want [tok-ci]", ids)
	}
}
