package store

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/flotilla-dev/flotilla/shared/jointoken"
)

// Errors of RedeemToken. They never say more than which check failed: not the secret, and
// for a wrong secret not whether the token is also expired or used.
var (
	ErrTokenInvalid = errors.New("join token is unknown or its secret is wrong")
	ErrTokenExpired = errors.New("join token has expired")
	ErrTokenUsed    = errors.New("join token has already been used")
)

// JoinToken is a join token as the hub stores it: the hash of its secret, never the secret.
type JoinToken struct {
	ID         string    `json:"id"`
	SecretHash []byte    `json:"secretHash"` // jointoken.HashSecret of the secret
	Cluster    string    `json:"cluster"`    // the cluster the token joins
	ExpiresAt  time.Time `json:"expiresAt"`
	UsedAt     time.Time `json:"usedAt,omitzero"` // zero until redeemed
	// UsedBy is the key ID (pki.CheckCSR: SHA-256 of the public key) of the certificate
	// request the token was redeemed with; the same key may redeem it again for
	// ReenrolWindow after UsedAt.
	UsedBy []byte `json:"usedBy,omitempty"`
}

// ReenrolWindow is how long after its first use a join token is accepted again from the same
// key (the same certificate request's public key): an agent whose join reply was lost, or
// whose join failed at the hub after the token was spent, retries with the same key and is
// issued its certificate again. Any other key finds the token used.
const ReenrolWindow = 10 * time.Minute

// PutToken stores a join token, replacing one with the same ID.
func (s *Store) PutToken(t JoinToken) error {
	if err := checkName("token", t.ID); err != nil {
		return fmt.Errorf("put join token: %w", err)
	}
	if err := checkName("cluster", t.Cluster); err != nil {
		return fmt.Errorf("put join token %s: %w", t.ID, err)
	}
	if len(t.SecretHash) != sha256.Size {
		return fmt.Errorf("put join token %s: secret hash has %d bytes, want %d", t.ID, len(t.SecretHash), sha256.Size)
	}
	if t.ExpiresAt.IsZero() {
		return fmt.Errorf("put join token %s: no expiry", t.ID)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketTokens), []byte(t.ID), t)
	})
	if err != nil {
		return fmt.Errorf("put join token %s: %w", t.ID, err)
	}
	return nil
}

// RedeemToken atomically checks that token id exists, that secret matches its hash (in
// constant time), that it has not been used and has not expired at now, and marks it used at
// now by keyID. It returns the cluster the token joins. A token used by the same non-empty
// keyID less than ReenrolWindow ago is redeemed again (again reports it), even past its
// expiry: the holder of that key already was given the token's cluster. The errors wrap
// ErrTokenInvalid (unknown id or wrong secret), ErrTokenUsed or ErrTokenExpired; the secret
// is checked first, so only its holder learns the token's state.
func (s *Store) RedeemToken(id, secret string, keyID []byte, now time.Time) (cluster string, again bool, err error) {
	hash := jointoken.HashSecret(secret)
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		var t JoinToken
		found := true
		if err := getJSON(b, []byte(id), &t); errors.Is(err, errNotFound) {
			found = false
			t.SecretHash = make([]byte, sha256.Size) // compare anyway: same work either way
		} else if err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		match := subtle.ConstantTimeCompare(hash, t.SecretHash) == 1
		switch {
		case !found || !match:
			return ErrTokenInvalid
		case !t.UsedAt.IsZero():
			if len(keyID) == 0 || !bytes.Equal(keyID, t.UsedBy) || !now.Before(t.UsedAt.Add(ReenrolWindow)) {
				return ErrTokenUsed
			}
			cluster, again = t.Cluster, true
			return nil
		case !now.Before(t.ExpiresAt):
			return ErrTokenExpired
		}
		t.UsedAt, t.UsedBy = now, keyID
		cluster = t.Cluster
		return putJSON(b, []byte(id), t)
	})
	if err != nil {
		return "", false, fmt.Errorf("redeem join token %q: %w", id, err)
	}
	return cluster, again, nil
}

// deleteTokensOf deletes every token that joins cluster.
func deleteTokensOf(b *bolt.Bucket, cluster string) error {
	var ids [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var t JoinToken
		if err := json.Unmarshal(v, &t); err != nil {
			return fmt.Errorf("decode join token %s: %w", k, err)
		}
		if t.Cluster == cluster {
			ids = append(ids, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := b.Delete(id); err != nil {
			return err
		}
	}
	return nil
}
