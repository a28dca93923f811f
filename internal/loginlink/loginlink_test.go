package loginlink

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	secret = bytes.Repeat([]byte{7}, 32)
	now    = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
)

func TestKeyPerSite(t *testing.T) {
	a, b := Key(secret, "uid-a"), Key(secret, "uid-b")
	if bytes.Equal(a, b) {
		t.Fatal("two sites share a login key")
	}
	if !bytes.Equal(a, Key(secret, "uid-a")) {
		t.Fatal("the key of a site is not stable")
	}
	if bytes.Equal(a, Key(bytes.Repeat([]byte{8}, 32), "uid-a")) {
		t.Fatal("the key does not depend on the platform secret")
	}
	if len(KeyHex(secret, "uid-a")) != 64 {
		t.Fatalf("hex key %q: want 64 hex digits", KeyHex(secret, "uid-a"))
	}
}

func TestNewFormat(t *testing.T) {
	key := Key(secret, "uid-a")
	tok, exp, err := New(key, "uid-a", "admin", false, now)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(TTL)) {
		t.Errorf("expires %v, want %v", exp, now.Add(TTL))
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$`).MatchString(tok) {
		t.Fatalf("token %q is not base64url(payload).base64url(32-byte MAC)", tok)
	}
	p, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	var c Claims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.V != 1 || c.Site != "uid-a" || c.User != "admin" || c.Expires != now.Add(TTL).Unix() || len(c.Nonce) != 32 {
		t.Errorf("claims %+v", c)
	}
	tok2, _, _ := New(key, "uid-a", "admin", false, now)
	if tok2 == tok {
		t.Error("two tokens made at the same time are equal: no nonce")
	}
	if _, _, err := New(key, "", "admin", false, now); err == nil {
		t.Error("a token without a site was made")
	}
}

func TestVerify(t *testing.T) {
	keyA, keyB := Key(secret, "uid-a"), Key(secret, "uid-b")
	good, _, err := New(keyA, "uid-a", "admin", false, now)
	if err != nil {
		t.Fatal(err)
	}
	p, sig, _ := strings.Cut(good, ".")
	flip := func(s string) string { // change the first character
		r := []byte(s)
		if r[0] == 'A' {
			r[0] = 'B'
		} else {
			r[0] = 'A'
		}
		return string(r)
	}
	claims := Claims{V: 1, Site: "uid-a", User: "admin", Expires: now.Add(TTL).Unix(), Nonce: "00ff00ff00ff00ff"}
	with := func(f func(*Claims)) string { c := claims; f(&c); return Sign(keyA, c) }
	tests := []struct {
		name  string
		key   []byte
		token string
		site  string
		at    time.Time
		want  error
	}{
		{"valid", keyA, good, "uid-a", now, nil},
		{"valid until the last second", keyA, good, "uid-a", now.Add(TTL - time.Second), nil},
		{"expired", keyA, good, "uid-a", now.Add(TTL), ErrExpired},
		{"signed for site A, checked by site B", keyB, good, "uid-b", now, ErrSignature},
		{"site A's key but site B's UID", keyA, good, "uid-b", now, ErrWrongSite},
		{"payload tampered", keyA, flip(p) + "." + sig, "uid-a", now, ErrSignature},
		{"signature tampered", keyA, p + "." + flip(sig), "uid-a", now, ErrSignature},
		{"other claims, old signature", keyA, base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"site":"uid-a","user":"other","exp":9999999999,"nonce":"x"}`)) + "." + sig, "uid-a", now, ErrSignature},
		{"no signature", keyA, p, "uid-a", now, ErrMalformed},
		{"empty", keyA, "", "uid-a", now, ErrMalformed},
		{"signature not base64", keyA, p + ".!!", "uid-a", now, ErrMalformed},
		{"wrong version", keyA, with(func(c *Claims) { c.V = 2 }), "uid-a", now, ErrMalformed},
		{"no user", keyA, with(func(c *Claims) { c.User = "" }), "uid-a", now, ErrMalformed},
		{"no nonce", keyA, with(func(c *Claims) { c.Nonce = "" }), "uid-a", now, ErrMalformed},
		{"nonce not hex", keyA, with(func(c *Claims) { c.Nonce = "zz00ff00ff00ff00ff" }), "uid-a", now, ErrMalformed},
		{"signed payload that is not JSON", keyA, func() string {
			q := base64.RawURLEncoding.EncodeToString([]byte("not json"))
			return q + "." + base64.RawURLEncoding.EncodeToString(mac(keyA, q))
		}(), "uid-a", now, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Verify(tt.key, tt.token, tt.site, tt.at)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
			if err == nil && (c.Site != "uid-a" || c.User != "admin") {
				t.Errorf("claims %+v", c)
			}
		})
	}
}
