package cluster

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
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

// ParseKeys reads the gossip keyring as stored in the file named by
// --gossip-key-file: one key (as ParseKey reads it), or several base64 keys, one
// per line, blank lines and lines starting with # ignored. The first key is the
// primary: gossip is encrypted with it. Every key listed is accepted when
// decrypting, which is what lets replicas rotate the key without downtime (add
// the new key second, then make it first, then remove the old one).
func ParseKeys(b []byte) ([][]byte, error) {
	if k, err := ParseKey(b); err == nil {
		return [][]byte{k}, nil
	}
	var keys [][]byte
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(k) != KeySize {
			return nil, fmt.Errorf("line %d: %w", i+1, ErrKeySize)
		}
		if !slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, ErrKeySize
	}
	return keys, nil
}
