// Package auth issues and verifies unitenant's access tokens: JWTs signed
// RS256 with a key id, whose public keys are published as a JWKS so any
// function (or an API gateway's JWT authorizer) verifies them without the
// signing key. Several verification keys can be live at once, so keys rotate.
//
// It never accepts a token it did not sign: only RS256 is allowed (no "none",
// no HMAC keyed with a public key), the kid must be known, and the issuer,
// audience and expiry are always checked.
package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/unitenant/unitenant/shared/fault"
)

// Audiences: who a token is for.
const (
	AudiencePlatform = "platform" // a logged-in global user, no tenant yet
	AudienceTenant   = "tenant"   // a global user inside one tenant (tid, role)
	AudienceAdmin    = "admin"    // a platform administrator
)

// Subject kinds.
const (
	KindUser  = "user"
	KindAdmin = "admin"
)

// Issuer is the iss of every token.
const Issuer = "unitenant"

// Claims are what an access token says.
type Claims struct {
	jwt.RegisteredClaims
	Kind     string `json:"typ"`            // KindUser or KindAdmin
	TenantID string `json:"tid,omitempty"`  // tenant code of a tenant-scoped token
	Role     string `json:"role,omitempty"` // role in that tenant, or the admin's role
}

// SubjectID returns the numeric id in sub (global_users.id or admin_users.id).
func (c *Claims) SubjectID() int64 {
	id, _ := strconv.ParseInt(c.Subject, 10, 64)
	return id
}

// Audience returns the token's single audience.
func (c *Claims) Audience() string {
	if len(c.RegisteredClaims.Audience) == 0 {
		return ""
	}
	return c.RegisteredClaims.Audience[0]
}

// Signer issues tokens with one private key.
type Signer struct {
	key *rsa.PrivateKey
	kid string
	now func() time.Time
}

// NewSigner returns a signer for key; now may be nil (time.Now).
func NewSigner(key *rsa.PrivateKey, now func() time.Time) *Signer {
	if now == nil {
		now = time.Now
	}
	return &Signer{key: key, kid: KeyID(&key.PublicKey), now: now}
}

// KeyID returns the kid of the signer's key.
func (s *Signer) KeyID() string { return s.kid }

// Public returns the public half of the signing key.
func (s *Signer) Public() *rsa.PublicKey { return &s.key.PublicKey }

// Issue signs a token for subject id of kind, for audience, valid for ttl.
// tenant and role are set on tenant-scoped and admin tokens.
func (s *Signer) Issue(kind string, id int64, audience, tenant, role string, ttl time.Duration) (string, *Claims, error) {
	now := s.now().UTC().Truncate(time.Second)
	var jti [12]byte
	_, _ = rand.Read(jti[:])
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   strconv.FormatInt(id, 10),
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        hex.EncodeToString(jti[:]),
		},
		Kind: kind, TenantID: tenant, Role: role,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = s.kid
	signed, err := t.SignedString(s.key)
	if err != nil {
		return "", nil, fmt.Errorf("sign token: %w", err)
	}
	return signed, c, nil
}

// Verifier checks tokens against a set of public keys.
type Verifier struct {
	keys   map[string]*rsa.PublicKey
	order  []string // kids, signing key first, for the JWKS
	leeway time.Duration
	now    func() time.Time
}

// NewVerifier returns a verifier trusting keys; now may be nil (time.Now).
func NewVerifier(keys []*rsa.PublicKey, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	v := &Verifier{keys: map[string]*rsa.PublicKey{}, leeway: 30 * time.Second, now: now}
	for _, k := range keys {
		kid := KeyID(k)
		if _, dup := v.keys[kid]; !dup {
			v.keys[kid] = k
			v.order = append(v.order, kid)
		}
	}
	return v
}

// Errors Verify returns (all 401).
var (
	ErrMissingToken  = fault.New(fault.Unauthorized, "missing_token", "an Authorization: Bearer token is required")
	ErrInvalidToken  = fault.New(fault.Unauthorized, "invalid_token", "the token is malformed, not signed by us, or signed with an unknown key")
	ErrTokenExpired  = fault.New(fault.Unauthorized, "token_expired", "the token has expired; refresh it")
	ErrWrongAudience = fault.New(fault.Unauthorized, "wrong_audience", "the token is not meant for this API")
)

// Verify parses and checks token: RS256 only, a known kid, our issuer, not
// expired, and an audience among audiences.
func (v *Verifier) Verify(token string, audiences ...string) (*Claims, error) {
	if token == "" {
		return nil, ErrMissingToken
	}
	c := &Claims{}
	_, err := jwt.ParseWithClaims(token, c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := v.keys[kid]
		if !ok {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
		return k, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrTokenExpired
	case err != nil:
		return nil, ErrInvalidToken
	}
	if c.Kind != KindUser && c.Kind != KindAdmin || c.SubjectID() <= 0 || len(c.RegisteredClaims.Audience) != 1 {
		return nil, ErrInvalidToken
	}
	for _, a := range audiences {
		if c.Audience() == a {
			return c, nil
		}
	}
	return nil, ErrWrongAudience
}
