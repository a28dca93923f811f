package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// ValidateNewToken checks what CreateToken requires (see Store): a non-empty
// ID and a Hash that is the lowercase hex of a SHA-256 sum (64 digits 0-9,
// a-f), so that a secret is never stored by mistake. Its error wraps
// ErrInvalid and names the call ("create token ..."), so it can be returned
// as is.
func ValidateNewToken(t Token) error {
	switch {
	case t.ID == "":
		return fmt.Errorf("create token: empty id: %w", ErrInvalid)
	case !isSHA256Hex(t.Hash):
		return fmt.Errorf("create token %q: hash is not a lowercase sha-256 hex: %w", t.ID, ErrInvalid)
	}
	return nil
}

// isSHA256Hex reports whether h looks like the lowercase hex of a SHA-256 sum.
func isSHA256Hex(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// TokenPrefix starts every API token secret, so a leaked one is easy to
// recognise (and to scan for).
const TokenPrefix = "aip_"

// NewTokenSecret returns a new token secret (TokenPrefix and 48 random hex
// digits: 192 bits) and the hash the store keeps of it (TokenHash).
func NewTokenSecret() (secret, hash string, err error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("token secret: %w", err)
	}
	secret = TokenPrefix + hex.EncodeToString(b)
	return secret, TokenHash(secret), nil
}

// TokenHash is what the store keeps of a token secret: the lowercase hex of
// its SHA-256.
func TokenHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SecretPrefix is the part of a secret kept in Token.Prefix: TokenPrefix
// and the next 8 characters (32 of its 192 random bits), enough to
// recognise a token, far from enough to guess it.
func SecretPrefix(secret string) string {
	return secret[:min(len(secret), len(TokenPrefix)+8)]
}
