package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors about a cluster of the registry, worded to end a sentence that names the cluster
// ("cluster %q is %w").
var (
	ErrNotRegistered = errors.New("not registered")
	ErrRevoked       = errors.New("revoked")
	ErrClusterExists = errors.New("already exists")
)

// Cluster is a registered cluster.
type Cluster struct {
	Name         string            `json:"name"`
	Labels       map[string]string `json:"labels,omitempty"`
	CreatedAt    time.Time         `json:"createdAt,omitzero"`
	Revoked      bool              `json:"revoked,omitempty"`
	AgentVersion string            `json:"agentVersion,omitempty"`
	LastSeen     time.Time         `json:"lastSeen,omitzero"`
	// AgeRecipient is the agent's age public key ("age1..."), sent when it joined.
	AgeRecipient string `json:"ageRecipient,omitempty"`
}

// PutCluster creates or replaces the cluster c.Name.
func (s *Store) PutCluster(c Cluster) error {
	if err := checkName("cluster", c.Name); err != nil {
		return fmt.Errorf("put cluster: %w", err)
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketClusters), []byte(c.Name), c)
	})
	if err != nil {
		return fmt.Errorf("put cluster %s: %w", c.Name, err)
	}
	return nil
}

// GetCluster returns the cluster called name; ok is false if there is none.
func (s *Store) GetCluster(name string) (c Cluster, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketClusters).Get([]byte(name))
		if data == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(data, &c)
	})
	if err != nil {
		return Cluster{}, false, fmt.Errorf("get cluster %s: %w", name, err)
	}
	return c, ok, nil
}

// ListClusters returns every cluster, sorted by name.
func (s *Store) ListClusters() ([]Cluster, error) {
	var out []Cluster
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketClusters).ForEach(func(k, v []byte) error {
			var c Cluster
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("decode cluster %s: %w", k, err)
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	return out, nil
}

// ClusterNames lists the name of every registered cluster, revoked ones included.
func (s *Store) ClusterNames() ([]string, error) {
	list, err := s.ListClusters()
	if err != nil {
		return nil, err
	}
	names := make([]string, len(list))
	for i, c := range list {
		names[i] = c.Name
	}
	return names, nil
}

// DeleteCluster removes the cluster together with its status snapshots and its join tokens,
// so neither a stale status nor a pending token outlives it. Its history and the audit log
// stay. Deleting a cluster that does not exist is not an error.
func (s *Store) DeleteCluster(name string) error {
	if err := checkName("cluster", name); err != nil {
		return fmt.Errorf("delete cluster: %w", err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketClusters).Delete([]byte(name)); err != nil {
			return err
		}
		if err := deletePrefix(tx.Bucket(bucketStatus), compositeKey(true, name)); err != nil {
			return err
		}
		return deleteTokensOf(tx.Bucket(bucketTokens), name)
	})
	if err != nil {
		return fmt.Errorf("delete cluster %s: %w", name, err)
	}
	return nil
}

// deletePrefix deletes every key with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
