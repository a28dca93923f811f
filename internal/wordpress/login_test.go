package wordpress

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/loginlink"
)

// TestLoginPluginVerifiesAsGo runs the aipress-login mu-plugin's token
// check in PHP on tokens made and mangled in Go, and wants the verdict
// internal/loginlink.Verify gives for each: the two must never disagree.
func TestLoginPluginVerifiesAsGo(t *testing.T) {
	if _, err := exec.LookPath("php"); err != nil {
		t.Skip("php missing")
	}
	lib := filepath.Join(t.TempDir(), "lib")
	if _, err := WriteMUPlugins(lib); err != nil {
		t.Fatal(err)
	}
	plugin := filepath.Join(lib, LoginPluginName)
	if st, err := os.Stat(plugin); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("login plugin: %v %v", st, err)
	}
	secret := bytes.Repeat([]byte{3}, 32)
	keyA, keyB := loginlink.Key(secret, "uid-a"), loginlink.Key(secret, "uid-b")
	now := time.Unix(1_800_000_000, 0)
	good, _, err := loginlink.New(keyA, "uid-a", "admin", false, now)
	if err != nil {
		t.Fatal(err)
	}
	goodTLS, _, err := loginlink.New(keyA, "uid-a", "admin", true, now)
	if err != nil {
		t.Fatal(err)
	}
	p, sig, _ := strings.Cut(good, ".")
	signed := func(payload string) string {
		q := base64.RawURLEncoding.EncodeToString([]byte(payload))
		m := hmac.New(sha256.New, keyA)
		m.Write([]byte(q))
		return q + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	type check struct {
		Name, Token, Key, UID string
		Now                   int64
		PlainHTTP             bool // the request did not arrive over TLS
	}
	checks := []check{
		{"valid", good, hex.EncodeToString(keyA), "uid-a", now.Unix(), false},
		{"valid over plain HTTP", good, hex.EncodeToString(keyA), "uid-a", now.Unix(), true},
		{"HTTPS link over TLS", goodTLS, hex.EncodeToString(keyA), "uid-a", now.Unix(), false},
		{"HTTPS link over plain HTTP", goodTLS, hex.EncodeToString(keyA), "uid-a", now.Unix(), true},
		{"tls a string", signed(`{"v":1,"site":"uid-a","user":"admin","exp":9999999999,"nonce":"00ff00ff00ff00ff","tls":"no"}`), hex.EncodeToString(keyA), "uid-a", now.Unix(), true},
		{"expired", good, hex.EncodeToString(keyA), "uid-a", now.Add(loginlink.TTL).Unix(), false},
		{"other site's key", good, hex.EncodeToString(keyB), "uid-b", now.Unix(), false},
		{"other site's UID", good, hex.EncodeToString(keyA), "uid-b", now.Unix(), false},
		{"payload changed", strings.ToUpper(p[:4]) + p[4:] + "." + sig, hex.EncodeToString(keyA), "uid-a", now.Unix(), false},
		{"no signature", p, hex.EncodeToString(keyA), "uid-a", now.Unix(), false},
		{"empty", "", hex.EncodeToString(keyA), "uid-a", now.Unix(), false},
		{"three parts", good + ".x", hex.EncodeToString(keyA), "uid-a", now.Unix(), false},
		{"not JSON", signed("nope"), hex.EncodeToString(keyA), "uid-a", now.Unix(), false},
		{"exp a string", signed(`{"v":1,"site":"uid-a","user":"admin","exp":"9999999999","nonce":"00ff00ff00ff00ff"}`), hex.EncodeToString(keyA), "uid-a", now.Unix(), false},
		{"nonce not hex", signed(`{"v":1,"site":"uid-a","user":"admin","exp":9999999999,"nonce":"'; DROP TABLE x"}`), hex.EncodeToString(keyA), "uid-a", now.Unix(), false},
		{"version 2", signed(`{"v":2,"site":"uid-a","user":"admin","exp":9999999999,"nonce":"00ff00ff00ff00ff"}`), hex.EncodeToString(keyA), "uid-a", now.Unix(), false},
		{"no key", good, "", "uid-a", now.Unix(), false},
	}
	in, _ := json.Marshal(checks)
	harness := `<?php
define('ABSPATH', '/');
require $argv[1];
$out = array();
foreach (json_decode(file_get_contents($argv[2]), true) as $c) {
	$r = AIPress_Login::verify($c['Token'], $c['Key'], $c['UID'], $c['Now'], !$c['PlainHTTP']);
	$out[$c['Name']] = is_array($r) ? 'ok' : $r;
}
echo json_encode($out);
`
	dir := t.TempDir()
	hf, cf := filepath.Join(dir, "harness.php"), filepath.Join(dir, "checks.json")
	if err := os.WriteFile(hf, []byte(harness), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cf, in, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("php", hf, plugin, cf).CombinedOutput()
	if err != nil {
		t.Fatalf("php: %v: %s", err, out)
	}
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	reason := map[error]string{nil: "ok", loginlink.ErrMalformed: "malformed", loginlink.ErrSignature: "signature",
		loginlink.ErrWrongSite: "site", loginlink.ErrExpired: "expired", loginlink.ErrNeedsTLS: "tls"}
	for _, c := range checks {
		key, _ := hex.DecodeString(c.Key)
		claims, err := loginlink.Verify(key, c.Token, c.UID, time.Unix(c.Now, 0))
		if err == nil {
			err = claims.CheckTLS(!c.PlainHTTP)
		}
		want, ok := reason[err]
		if !ok {
			t.Fatalf("%s: Verify: unexpected %v", c.Name, err)
		}
		if c.Key == "" {
			want = "malformed" // the plugin refuses a missing key outright
		}
		if got[c.Name] != want {
			t.Errorf("%s: PHP says %q, Go says %q", c.Name, got[c.Name], want)
		}
	}
	if got["valid"] != "ok" || got["expired"] != "expired" || got["other site's key"] != "signature" ||
		got["HTTPS link over plain HTTP"] != "tls" || got["HTTPS link over TLS"] != "ok" || got["valid over plain HTTP"] != "ok" {
		t.Errorf("verdicts %v", got)
	}
}
