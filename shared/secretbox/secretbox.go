// Package secretbox encrypts secrets at rest (database passwords, provider
// API keys, webhook secrets) with AES-256-GCM under the master key.
//
// Every ciphertext is bound to where it belongs by associated data (say
// "tenant_databases:42:password"): copied into another tenant's row it no
// longer opens. It never logs or returns a key.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/unitenant/unitenant/shared/config"
)

// version prefixes every ciphertext so the format can change later.
const version byte = 1

// Box seals and opens secrets with one master key.
type Box struct{ aead cipher.AEAD }

// New returns a box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("master key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// ParseKey decodes a base64 (standard or URL, padded or not) 32-byte key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("want 32 random bytes in base64 (openssl rand -base64 32)")
}

// Seal encrypts plaintext bound to aad.
func (b *Box) Seal(plaintext []byte, aad string) []byte {
	nonce := make([]byte, b.aead.NonceSize(), 1+b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	_, _ = rand.Read(nonce)
	out := append([]byte{version}, nonce...)
	return b.aead.Seal(out, nonce, plaintext, []byte(aad))
}

// ErrOpen is returned for a ciphertext that is corrupt, sealed under another
// key, or bound to another aad.
var ErrOpen = errors.New("secret cannot be opened: wrong key, wrong owner, or corrupt")

// Open decrypts a ciphertext sealed for aad.
func (b *Box) Open(ciphertext []byte, aad string) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(ciphertext) < 1+n+b.aead.Overhead() || ciphertext[0] != version {
		return nil, ErrOpen
	}
	pt, err := b.aead.Open(nil, ciphertext[1:1+n], ciphertext[1+n:], []byte(aad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// DevKey returns the development master key stored in dir, creating it once.
func DevKey(dir string) ([]byte, error) {
	b, err := config.DevSecret(dir, "master.key", func() ([]byte, error) {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		return []byte(base64.StdEncoding.EncodeToString(key) + "\n"), nil
	})
	if err != nil {
		return nil, err
	}
	return ParseKey(string(b))
}

// FromEnv returns the box for MASTER_KEY, or in development the key under
// devDir (.dev/keys).
func FromEnv(masterKey string, devEnv bool, devDir string) (*Box, error) {
	if masterKey == "" {
		if !devEnv {
			return nil, errors.New("MASTER_KEY must be set outside development")
		}
		k, err := DevKey(devDir)
		if err != nil {
			return nil, fmt.Errorf("dev master key: %w", err)
		}
		return New(k)
	}
	k, err := ParseKey(masterKey)
	if err != nil {
		return nil, fmt.Errorf("MASTER_KEY: %w", err)
	}
	return New(k)
}
