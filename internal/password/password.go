// Package password hashes and checks users' passwords with argon2id
// (golang.org/x/crypto/argon2) and holds the platform's password policy.
//
// Hashes are PHC strings,
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt, base64 raw std>$<hash, base64 raw std>
//
// and Verify reads the cost parameters from the string, so the platform can
// raise them later: a hash made with lower parameters still verifies, and
// NeedsRehash tells the caller to store a new hash after a successful
// sign-in.
//
// # Parameters
//
// The default is OWASP's recommended argon2id configuration, m=19 MiB, t=2,
// p=1 (OWASP Password Storage Cheat Sheet), rather than RFC 9106's second
// recommendation (m=64 MiB, t=3, p=4). Both give comparable resistance to
// GPU guessing per unit of defender time; OWASP's needs a third of the
// memory per sign-in and one core, which matters on a control plane that
// shares a small machine with shards: 20 concurrent sign-ins cost ~380 MiB
// instead of 1.3 GiB, and p=1 does not let one sign-in take every core.
// Params is injectable (tests use a tiny cost) and stored in every hash.
//
// # Unknown users
//
// Callers that find no user for an e-mail call VerifyDummy, which verifies
// against a hash made once at start-up with the same parameters: a sign-in
// for an unknown e-mail costs the same time as one with a wrong password.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams is OWASP's argon2id configuration (see the package doc).
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Policy limits (see CheckPolicy).
const (
	MinLength = 12
	// MaxLength bounds the work a sign-in request can ask for (argon2
	// hashes the whole password) while allowing passphrases.
	MaxLength = 1024
)

// ErrMismatch is Verify's answer for a wrong password.
var ErrMismatch = errors.New("password does not match")

// ErrMalformed wraps the errors of a hash that is not an argon2id PHC
// string this package can read.
var ErrMalformed = errors.New("malformed password hash")

// Hasher hashes and verifies passwords with fixed parameters for new
// hashes. It is safe for concurrent use.
type Hasher struct {
	params Params
	dummy  string
}

// New returns a Hasher making new hashes with p (zero fields take
// DefaultParams' values). It computes the dummy hash VerifyDummy uses, so
// it costs one hash.
func New(p Params) (*Hasher, error) {
	if p.Memory == 0 {
		p.Memory = DefaultParams.Memory
	}
	if p.Time == 0 {
		p.Time = DefaultParams.Time
	}
	if p.Threads == 0 {
		p.Threads = DefaultParams.Threads
	}
	if p.SaltLen == 0 {
		p.SaltLen = DefaultParams.SaltLen
	}
	if p.KeyLen == 0 {
		p.KeyLen = DefaultParams.KeyLen
	}
	if p.SaltLen < 8 || p.KeyLen < 16 {
		return nil, fmt.Errorf("password: salt must be at least 8 bytes and key at least 16, got %d and %d", p.SaltLen, p.KeyLen)
	}
	h := &Hasher{params: p}
	d, err := h.Hash("aipress dummy password for unknown users")
	if err != nil {
		return nil, err
	}
	h.dummy = d
	return h, nil
}

// Params returns the parameters of new hashes.
func (h *Hasher) Params() Params { return h.params }

// Hash returns the PHC string of password's argon2id hash with a new
// random salt.
func (h *Hasher) Hash(password string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
	return encode(h.params, salt, key), nil
}

func encode(p Params, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// maxMemory bounds the memory a stored hash may ask Verify for (4 GiB): a
// tampered hash must not exhaust the control plane.
const maxMemory = 4 * 1024 * 1024

// Decode parses a PHC string into its parameters, salt and key.
func Decode(phc string) (Params, []byte, []byte, error) {
	bad := func(why string) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: %s", ErrMalformed, why)
	}
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("want $argon2id$v=..$m=..,t=..,p=..$salt$hash")
	}
	if parts[1] != "argon2id" {
		return bad("algorithm " + strconv.Quote(parts[1]) + " is not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("version " + strconv.Quote(parts[2]))
	}
	var p Params
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || n == 0 {
			return bad("parameter " + strconv.Quote(kv))
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return bad("parallelism over 255")
			}
			p.Threads = uint8(n)
		default:
			return bad("unknown parameter " + strconv.Quote(k))
		}
	}
	if p.Memory == 0 || p.Time == 0 || p.Threads == 0 {
		return bad("m, t and p are required")
	}
	if p.Memory > maxMemory || p.Memory < 8*uint32(p.Threads) {
		return bad("memory out of range")
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return bad("salt")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 {
		return bad("hash")
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}

// Verify checks password against the PHC string phc: nil when it matches,
// ErrMismatch when not, an error wrapping ErrMalformed when phc cannot be
// read. The comparison is constant-time.
func Verify(phc, password string) error {
	p, salt, key, err := Decode(phc)
	if err != nil {
		return err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return ErrMismatch
	}
	return nil
}

// VerifyDummy spends the time a Verify costs and returns ErrMismatch: for
// a sign-in whose user does not exist (or has no password).
func (h *Hasher) VerifyDummy(password string) error {
	_ = Verify(h.dummy, password)
	return ErrMismatch
}

// NeedsRehash reports whether phc was made with parameters other than the
// Hasher's (or cannot be read): the caller should store a new hash after
// the password was verified.
func (h *Hasher) NeedsRehash(phc string) bool {
	p, _, _, err := Decode(phc)
	return err != nil || p != h.params
}

// PolicyError is CheckPolicy's answer: a safe message for the user.
type PolicyError struct{ Msg string }

func (e *PolicyError) Error() string { return e.Msg }

// CheckPolicy checks a new password against the platform's policy: at
// least MinLength and at most MaxLength characters (runes), valid UTF-8,
// and not the user's e-mail address (compared without case). It returns a
// *PolicyError.
func CheckPolicy(password, email string) error {
	if !utf8.ValidString(password) {
		return &PolicyError{"password must be valid UTF-8"}
	}
	n := utf8.RuneCountInString(password)
	switch {
	case n < MinLength:
		return &PolicyError{fmt.Sprintf("password must be at least %d characters", MinLength)}
	case n > MaxLength:
		return &PolicyError{fmt.Sprintf("password must be at most %d characters", MaxLength)}
	case email != "" && strings.EqualFold(strings.TrimSpace(password), strings.TrimSpace(email)):
		return &PolicyError{"password must not be your e-mail address"}
	}
	return nil
}
