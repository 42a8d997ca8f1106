// Package jointoken is the join token an operator hands to a new agent: a token ID, a one-time
// secret and the fingerprint of the hub's CA certificate, so the agent can verify the hub on
// first contact without any prior trust (like kubeadm's discovery token CA cert hash).
//
// The serialized form is flt1.<id>.<secret>.<ca-fingerprint-hex>. The hub stores only the ID
// and HashSecret(secret).
package jointoken

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

const (
	// Prefix is the version tag every token starts with.
	Prefix = "flt1"
	// FingerprintPrefix starts every CA fingerprint: "sha256:<64 lowercase hex>".
	FingerprintPrefix = "sha256:"

	idBytes     = 6  // 12 hex characters
	secretBytes = 20 // 32 base32 characters, 160 bits
	idLen       = 2 * idBytes
	secretLen   = secretBytes * 8 / 5
	hashHexLen  = 2 * sha256.Size
)

// ErrMalformed is returned (wrapped) by Parse for anything that is not a well-formed token.
var ErrMalformed = errors.New("malformed join token")

var secretEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Token is a parsed join token.
type Token struct {
	ID            string // 12 lowercase hex characters; not secret
	Secret        string // 32 lowercase base32 characters; never log it
	CAFingerprint string // "sha256:<hex>" of the hub CA certificate's DER
}

// A Token is logged only through LogValue and printed with %#v only through GoString, which
// leave the secret out.
var (
	_ fmt.Stringer   = Token{}
	_ fmt.GoStringer = Token{}
	_ slog.LogValuer = Token{}
)

// Generate returns a new token with a random ID and secret for the hub CA with the given
// fingerprint.
func Generate(caFingerprint string) (Token, error) {
	fp, err := normalizeFingerprint(caFingerprint)
	if err != nil {
		return Token{}, fmt.Errorf("generate join token: %w", err)
	}
	id := make([]byte, idBytes)
	secret := make([]byte, secretBytes)
	if _, err := rand.Read(id); err != nil {
		return Token{}, fmt.Errorf("generate join token id: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return Token{}, fmt.Errorf("generate join token secret: %w", err)
	}
	return Token{
		ID:            hex.EncodeToString(id),
		Secret:        secretEncoding.EncodeToString(secret),
		CAFingerprint: fp,
	}, nil
}

// Parse parses a serialized token. Surrounding white space is ignored and the token is
// case-insensitive. Errors wrap ErrMalformed and never quote the input, so they never carry
// the secret.
func Parse(s string) (Token, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), ".")
	if len(parts) != 4 || parts[0] != Prefix {
		return Token{}, fmt.Errorf("parse join token: %w: want %s.<id>.<secret>.<ca-hash>", ErrMalformed, Prefix)
	}
	id, secret, hash := parts[1], parts[2], parts[3]
	if len(id) != idLen || !isHex(id) {
		return Token{}, fmt.Errorf("parse join token: %w: id must be %d hex characters", ErrMalformed, idLen)
	}
	if len(secret) != secretLen || !isBase32(secret) {
		return Token{}, fmt.Errorf("parse join token %s: %w: secret must be %d base32 characters", id, ErrMalformed, secretLen)
	}
	if len(hash) != hashHexLen || !isHex(hash) {
		return Token{}, fmt.Errorf("parse join token %s: %w: ca hash must be %d hex characters", id, ErrMalformed, hashHexLen)
	}
	return Token{ID: id, Secret: secret, CAFingerprint: FingerprintPrefix + hash}, nil
}

// String returns the serialized token, secret included: it is what the operator hands to the
// agent. Never log it; loggers get LogValue, which redacts the secret.
func (t Token) String() string {
	return Prefix + "." + t.ID + "." + t.Secret + "." + strings.TrimPrefix(t.CAFingerprint, FingerprintPrefix)
}

// LogValue makes slog print the token without its secret.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", t.ID), slog.String("ca", t.CAFingerprint))
}

// GoString keeps %#v from printing the secret.
func (t Token) GoString() string {
	return fmt.Sprintf("jointoken.Token{ID:%q, Secret:\"<redacted>\", CAFingerprint:%q}", t.ID, t.CAFingerprint)
}

// HashSecret returns the sha256 of a token secret: what the hub stores instead of the secret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Fingerprint returns "sha256:<hex>" of a certificate's DER bytes.
func Fingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return FingerprintPrefix + hex.EncodeToString(h[:])
}

// normalizeFingerprint checks that fp is "sha256:<64 hex>" and returns it lower case.
func normalizeFingerprint(fp string) (string, error) {
	fp = strings.ToLower(strings.TrimSpace(fp))
	hash, ok := strings.CutPrefix(fp, FingerprintPrefix)
	if !ok || len(hash) != hashHexLen || !isHex(hash) {
		return "", fmt.Errorf("ca fingerprint: want %s<%d hex characters>", FingerprintPrefix, hashHexLen)
	}
	return fp, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isBase32(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}
