package repo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"
)

// Additional authenticated data per object kind: an object cannot be
// passed off as one of another kind (an index as a snapshot, ...).
const (
	aadKey      = "aipress-backup/v1/key"
	aadConfig   = "aipress-backup/v1/config"
	aadIndex    = "aipress-backup/v1/index"
	aadSnapshot = "aipress-backup/v1/snapshot"
	aadLock     = "aipress-backup/v1/lock"
	aadHeader   = "aipress-backup/v1/pack-header"
)

// nonceSize and tagSize of AES-GCM: each sealed message is
// nonce || ciphertext || tag.
const (
	nonceSize = 12
	tagSize   = 16
	overhead  = nonceSize + tagSize
)

// keys are the working keys derived from the master key.
type keys struct {
	aead  cipher.AEAD // AES-256-GCM under the encryption subkey
	idKey []byte      // HMAC-SHA256 key naming chunks
	hmacs sync.Pool   // of hash.Hash keyed with idKey
}

func deriveKeys(master []byte) (*keys, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("master key: want %d bytes, got %d", KeySize, len(master))
	}
	enc, err := hkdf.Key(sha256.New, master, nil, "aipress-backup/v1/encryption", 32)
	if err != nil {
		return nil, err
	}
	idKey, err := hkdf.Key(sha256.New, master, nil, "aipress-backup/v1/chunk-id", 32)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(enc)
	if err != nil {
		return nil, err
	}
	k := &keys{aead: aead, idKey: idKey}
	k.hmacs.New = func() any { return hmac.New(sha256.New, k.idKey) }
	return k, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("key: want %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// chunkID returns the keyed id of a chunk's plaintext.
func (k *keys) chunkID(data []byte) ChunkID {
	h := k.hmacs.Get().(hash.Hash)
	h.Reset()
	h.Write(data)
	var id ChunkID
	h.Sum(id[:0])
	k.hmacs.Put(h)
	return id
}

// seal appends nonce || AES-GCM(plaintext, aad) to dst.
func seal(aead cipher.AEAD, dst, plaintext, aad []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, nonceSize)...)
	if _, err := rand.Read(dst[start:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return aead.Seal(dst, dst[start:start+nonceSize], plaintext, aad)
}

// open authenticates and decrypts nonce || ciphertext, appending the
// plaintext to dst. Failure wraps ErrCorrupt.
func open(aead cipher.AEAD, dst, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < overhead {
		return nil, fmt.Errorf("%w: sealed data too short (%d bytes)", ErrCorrupt, len(sealed))
	}
	out, err := aead.Open(dst, sealed[:nonceSize], sealed[nonceSize:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrCorrupt)
	}
	return out, nil
}
