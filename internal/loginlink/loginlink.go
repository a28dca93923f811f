// Package loginlink makes and checks the one-time links that sign a
// browser into a site's wp-admin (POST /v1/sites/{name}/login-link).
//
// A link is the site's URL with ?aipress_login=<token>. The token is
//
//	base64url(payload) "." base64url(HMAC-SHA256(key, base64url(payload)))
//
// where payload is the JSON object {"v":1,"site":uid,"user":login,
// "exp":unix seconds,"nonce":random[,"tls":true]}, and key is the site's own login key:
// HMAC-SHA256(platform secret, "wp-login:" + len(uid) + ":" + uid) (Key).
// The control plane derives the key to sign; the shard writes it into the
// site's wp-config.php (AIPRESS_LOGIN_KEY, hex, beside AIPRESS_SITE_UID)
// for the aipress-login must-use plugin, which checks the token the same
// way as Verify, then records the nonce in the site's own database so the
// link works once (internal/wordpress, aipress-login.php).
//
// "tls" is set on a link made for HTTPS (the site redirects to HTTPS and
// the platform's edge serves it, so the link is https://): the plugin
// refuses such a token on a request that did not arrive over TLS
// (is_ssl()), which Claims.CheckTLS mirrors. A link made for plain HTTP
// (no HTTPS listener, or the site does not redirect) has no "tls".
//
// Every site's PHP can read its own key, so it could sign itself in —
// which it can do anyway. It learns nothing of another site's key (an
// HMAC of another UID), so no site can make a link that another accepts;
// the UID in the payload is checked as well.
package loginlink

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Param is the query parameter that carries the token.
const Param = "aipress_login"

// TTL is how long a link works after it is made.
const TTL = 2 * time.Minute

// version is the payload's format ("v").
const version = 1

// nonceRE is what a nonce looks like (the plugin checks the same).
var nonceRE = regexp.MustCompile(`^[0-9a-f]{16,64}$`)

// Errors of Verify.
var (
	ErrMalformed = errors.New("login token: malformed")
	ErrSignature = errors.New("login token: bad signature")
	ErrWrongSite = errors.New("login token: for another site")
	ErrExpired   = errors.New("login token: expired")
	ErrNeedsTLS  = errors.New("login token: made for HTTPS, used over plain HTTP")
)

// Key derives the login key of the site with uid from the platform secret.
func Key(secret []byte, siteUID string) []byte {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "wp-login:%d:%s", len(siteUID), siteUID)
	return mac.Sum(nil)
}

// KeyHex is Key in hex, as wp-config.php defines it.
func KeyHex(secret []byte, siteUID string) string { return hex.EncodeToString(Key(secret, siteUID)) }

// Claims are what a token says.
type Claims struct {
	V       int    `json:"v"`
	Site    string `json:"site"` // the site's UID
	User    string `json:"user"` // the WordPress user's login
	Expires int64  `json:"exp"`  // Unix seconds
	Nonce   string `json:"nonce"`
	// TLS: the link was made for HTTPS and works only over TLS.
	TLS bool `json:"tls,omitempty"`
}

// CheckTLS is ErrNeedsTLS when c was made for HTTPS and the request
// carrying it (overTLS false) was not.
func (c Claims) CheckTLS(overTLS bool) error {
	if c.TLS && !overTLS {
		return ErrNeedsTLS
	}
	return nil
}

// New returns a token for user of the site with uid, signed with the
// site's key (Key), that expires TTL after now; with tls, only for use
// over HTTPS (Claims.TLS).
func New(key []byte, siteUID, user string, tls bool, now time.Time) (token string, expires time.Time, err error) {
	if siteUID == "" || user == "" {
		return "", time.Time{}, errors.New("login token: site and user are required")
	}
	n := make([]byte, 16)
	if _, err := rand.Read(n); err != nil {
		return "", time.Time{}, fmt.Errorf("login token: %w", err)
	}
	expires = now.Add(TTL).Truncate(time.Second)
	c := Claims{V: version, Site: siteUID, User: user, Expires: expires.Unix(), Nonce: hex.EncodeToString(n), TLS: tls}
	return Sign(key, c), expires.UTC(), nil
}

// Sign returns the token of c under key (New is the usual way; tests
// use Sign for tokens New would not make).
func Sign(key []byte, c Claims) string {
	b, _ := json.Marshal(c)
	p := base64.RawURLEncoding.EncodeToString(b)
	return p + "." + base64.RawURLEncoding.EncodeToString(mac(key, p))
}

func mac(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// Verify checks token as the must-use plugin does, except for the
// nonce's one use (which needs the site's database) and the request's
// scheme (Claims.CheckTLS): the signature under key, the site's UID and
// expiry at now.
func Verify(key []byte, token, siteUID string, now time.Time) (Claims, error) {
	p, sig, ok := strings.Cut(token, ".")
	if !ok || p == "" || sig == "" {
		return Claims{}, ErrMalformed
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return Claims{}, ErrMalformed
	}
	if !hmac.Equal(got, mac(key, p)) {
		return Claims{}, ErrSignature
	}
	b, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return Claims{}, ErrMalformed
	}
	var c Claims
	if err := json.Unmarshal(b, &c); err != nil || c.V != version || c.User == "" || !nonceRE.MatchString(c.Nonce) {
		return Claims{}, ErrMalformed
	}
	if c.Site != siteUID {
		return Claims{}, ErrWrongSite
	}
	if now.Unix() >= c.Expires {
		return Claims{}, ErrExpired
	}
	return c, nil
}
