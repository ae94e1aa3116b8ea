package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"

	"github.com/unitenant/unitenant/shared/config"
)

// KeyID is the RFC 7638 JWK thumbprint of key: the same key always has the
// same kid, in every function, without configuring one.
func KeyID(key *rsa.PublicKey) string {
	// Members in lexicographic order, no spaces: the RFC's canonical form.
	canon := fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, b64(big.NewInt(int64(key.E)).Bytes()), b64(key.N.Bytes()))
	sum := sha256.Sum256([]byte(canon))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// JWKS returns the verifier's public keys as a JSON Web Key Set.
func (v *Verifier) JWKS() []byte {
	type jwk struct {
		Kty string `json:"kty"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, kid := range v.order {
		k := v.keys[kid]
		set.Keys = append(set.Keys, jwk{Kty: "RSA", Use: "sig", Alg: "RS256", Kid: kid, N: b64(k.N.Bytes()), E: b64(big.NewInt(int64(k.E)).Bytes())})
	}
	b, _ := json.Marshal(set)
	return b
}

// Keys is a function's token configuration: a signer where the function
// issues tokens (login), and the verifier every function has.
type Keys struct {
	Signer   *Signer // nil where no private key is configured
	Verifier *Verifier
}

// LoadKeys reads the token keys from the environment:
//
//	JWT_PRIVATE_KEY   PEM private key (PKCS#1 or PKCS#8) that signs; login needs it
//	JWT_PUBLIC_KEYS   PEM public keys also trusted (rotation, verify-only functions)
//
// In development, with neither set, a key is generated once under devDir
// (.dev/keys) and shared by every local function.
func LoadKeys(e *config.Env, devEnv bool, devDir string) (*Keys, error) {
	privPEM := e.Secret("JWT_PRIVATE_KEY", "")
	pubPEM := e.String("JWT_PUBLIC_KEYS", "")
	if privPEM == "" && pubPEM == "" {
		if !devEnv {
			return nil, errors.New("JWT_PRIVATE_KEY or JWT_PUBLIC_KEYS must be set outside development")
		}
		key, err := DevKey(devDir)
		if err != nil {
			return nil, err
		}
		return &Keys{Signer: NewSigner(key, nil), Verifier: NewVerifier([]*rsa.PublicKey{&key.PublicKey}, nil)}, nil
	}
	var ks Keys
	var pubs []*rsa.PublicKey
	if privPEM != "" {
		key, err := ParsePrivateKey([]byte(privPEM))
		if err != nil {
			return nil, fmt.Errorf("JWT_PRIVATE_KEY: %w", err)
		}
		ks.Signer = NewSigner(key, nil)
		pubs = append(pubs, &key.PublicKey)
	}
	if pubPEM != "" {
		more, err := ParsePublicKeys([]byte(pubPEM))
		if err != nil {
			return nil, fmt.Errorf("JWT_PUBLIC_KEYS: %w", err)
		}
		pubs = append(pubs, more...)
	}
	ks.Verifier = NewVerifier(pubs, nil)
	return &ks, nil
}

// ParsePrivateKey reads an RSA private key in PEM (PKCS#1 or PKCS#8).
func ParsePrivateKey(b []byte) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block found")
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return checkSize(k)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not an RSA private key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key (RS256 needs RSA)")
	}
	return checkSize(rk)
}

func checkSize(k *rsa.PrivateKey) (*rsa.PrivateKey, error) {
	if k.N.BitLen() < 2048 {
		return nil, fmt.Errorf("RSA key of %d bits is too small; use 2048 or more", k.N.BitLen())
	}
	return k, nil
}

// ParsePublicKeys reads one or more RSA public keys in PEM (PKIX or PKCS#1).
func ParsePublicKeys(b []byte) ([]*rsa.PublicKey, error) {
	var out []*rsa.PublicKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if k, err := x509.ParsePKCS1PublicKey(blk.Bytes); err == nil {
			out = append(out, k)
			continue
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", len(out)+1, err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("PEM block %d is not an RSA key", len(out)+1)
		}
		out = append(out, rk)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return out, nil
}

// EncodePrivateKey returns key as PKCS#8 PEM.
func EncodePrivateKey(key *rsa.PrivateKey) []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// EncodePublicKey returns key as PKIX PEM.
func EncodePublicKey(key *rsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// DevKey returns the development signing key in dir, creating it on first use.
func DevKey(dir string) (*rsa.PrivateKey, error) {
	b, err := config.DevSecret(dir, "jwt-signing.pem", func() ([]byte, error) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		return EncodePrivateKey(key), nil
	})
	if err != nil {
		return nil, err
	}
	return ParsePrivateKey(b)
}
