package cluster

import (
	"bytes"
	"encoding/base64"
	"errors"
)

// KeySize is the size of the gossip encryption key: AES-256.
const KeySize = 32

// ErrKeySize is returned for a gossip key that is not KeySize bytes.
var ErrKeySize = errors.New("gossip key must be 32 bytes, raw or base64-encoded")

// ParseKey reads a gossip key as stored in the file named by --gossip-key-file:
// the standard base64 encoding of 32 bytes (surrounding white space allowed), or
// exactly 32 raw bytes.
func ParseKey(b []byte) ([]byte, error) {
	if k, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b))); err == nil && len(k) == KeySize {
		return k, nil
	}
	if len(b) == KeySize {
		return bytes.Clone(b), nil
	}
	return nil, ErrKeySize
}
