package cli

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/password"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

const loginPassword = "correct horse battery staple"

// loginServer runs the API (real clock: the device flow's polling interval
// is checked against it) with one platform-admin user.
func loginServer(t *testing.T) (url string, st store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h, err := password.New(password.Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	phc, _ := h.Hash(loginPassword)
	if err := st.CreateUser(ctx, &store.User{ID: "usr-ann", Email: "ann@example.com", PasswordHash: phc,
		PlatformRole: store.RoleAdmin, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: st, Auth: api.AuthConfig{Passwords: h, DeviceInterval: time.Second}}))
	t.Cleanup(srv.Close)
	return srv.URL, st
}

func loginDeps(dir string, env map[string]string) deps {
	env[EnvDataDir] = dir
	return deps{now: time.Now, getenv: func(k string) string { return env[k] }, poll: 5 * time.Millisecond}
}

func TestLoginPasswordAndLogout(t *testing.T) {
	url, st := loginServer(t)
	dir := t.TempDir()
	d := loginDeps(dir, map[string]string{})
	root := newRoot("test", d)
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(loginPassword + "\n"))
	root.SetArgs([]string{"login", "--url", url, "--password", "--email", "ann@example.com", "--name", "ci"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("login: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "signed in to "+url+" as ann@example.com") {
		t.Errorf("output %q", out.String())
	}
	cfg, err := apiclient.ReadConfig(dir)
	if err != nil || cfg.URL != url || !strings.HasPrefix(cfg.Token, store.TokenPrefix) {
		t.Fatalf("client.json %+v %v", cfg, err)
	}
	if strings.Contains(out.String(), cfg.Token) {
		t.Error("the token secret was printed")
	}
	tok, err := st.LookupToken(context.Background(), store.TokenHash(cfg.Token))
	if err != nil || tok.Name != "ci" || tok.UserID != "usr-ann" || tok.Kind != store.TokenAPI {
		t.Fatalf("token %+v %v", tok, err)
	}
	// Other commands use it.
	if stdout, _, err := runCmd(t, d, "site", "list"); err != nil {
		t.Fatalf("site list with the login's token: %v %s", err, stdout)
	}

	// A wrong password is an error and writes nothing.
	root = newRoot("test", d)
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SetIn(strings.NewReader("wrong password!!\n"))
	root.SetArgs([]string{"login", "--password", "--email", "ann@example.com"})
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "wrong e-mail or password") {
		t.Fatalf("wrong password: %v", err)
	}
	if again, _ := apiclient.ReadConfig(dir); again.Token != cfg.Token {
		t.Error("a failed login changed client.json")
	}

	stdout, _, err := runCmd(t, d, "logout")
	if err != nil || !strings.Contains(stdout, "signed out of "+url) {
		t.Fatalf("logout: %v %q", err, stdout)
	}
	if _, err := st.LookupToken(context.Background(), store.TokenHash(cfg.Token)); err == nil {
		t.Error("token still valid after logout")
	}
	if after, _ := apiclient.ReadConfig(dir); after.Token != "" || after.URL != url {
		t.Errorf("client.json after logout %+v", after)
	}
	if _, _, err := runCmd(t, d, "logout"); err == nil {
		t.Error("second logout succeeded")
	}
}

var userCodeRE = regexp.MustCompile(`enter the code ([B-Z]{4}-[B-Z]{4})`)

func TestLoginDeviceFlow(t *testing.T) {
	url, st := loginServer(t)
	// The approver: ann signed in with a session-less API token.
	approver := apiclient.New(url, "")
	res, err := approver.Login(context.Background(), apiclient.LoginRequest{Email: "ann@example.com", Password: loginPassword, Token: true})
	if err != nil {
		t.Fatal(err)
	}
	approver.Token = res.Token

	dir := t.TempDir()
	d := loginDeps(dir, map[string]string{EnvURL: url})
	root := newRoot("test", d)
	pr, pw := io.Pipe()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(pw)
	root.SetArgs([]string{"login", "-o", "json"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()

	sc := bufio.NewScanner(pr)
	var code string
	for sc.Scan() {
		if m := userCodeRE.FindStringSubmatch(sc.Text()); m != nil {
			code = m[1]
			break
		}
	}
	if code == "" {
		t.Fatalf("no user code printed; login: %v", <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	// Approve through the CLI, as ann (another data dir holding her token).
	other := t.TempDir()
	if err := apiclient.WriteConfig(other, url, approver.Token); err != nil {
		t.Fatal(err)
	}
	if stdout, _, err := runCmd(t, loginDeps(other, map[string]string{}), "login", "approve", strings.ToLower(code)); err != nil {
		t.Fatalf("approve: %v %s", err, stdout)
	}
	if err := <-done; err != nil {
		t.Fatalf("login: %v", err)
	}
	if !strings.Contains(out.String(), `"email": "ann@example.com"`) || strings.Contains(out.String(), `"token":`) {
		t.Errorf("json output %s", out.String())
	}
	cfg, err := apiclient.ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := st.LookupToken(context.Background(), store.TokenHash(cfg.Token))
	if err != nil || tok.UserID != "usr-ann" || !strings.HasPrefix(tok.Name, "aipress login") {
		t.Fatalf("device token %+v %v", tok, err)
	}
}
