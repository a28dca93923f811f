package gitsync

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// SealKey derives git sync's sealing key from the platform secret, so
// every control-plane replica sharing the secret opens what another
// sealed.
func SealKey(platformSecret []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, platformSecret, nil, "aipress gitsync seal v1", 32)
}

// sealer encrypts small secrets (credentials, webhook secrets) with
// AES-256-GCM; what it seals is bound to a label (the setting it lives
// in), so a sealed value copied to another record does not open there.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("gitsync: sealing key of %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("gitsync: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gitsync: %w", err)
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(label string, plain []byte) string {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(label)))
}

func (s *sealer) open(label, sealed string) ([]byte, error) {
	b, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return nil, errors.New("gitsync: malformed sealed value")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], []byte(label))
	if err != nil {
		return nil, fmt.Errorf("gitsync: open sealed value: %w", err)
	}
	return plain, nil
}
