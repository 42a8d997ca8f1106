package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Pin holds an app on a cluster at a revision chosen by an operator (`flotilla rollback --to`),
// whatever Git's target revision says, until cleared.
type Pin struct {
	App      string    `json:"app"`
	Cluster  string    `json:"cluster"`
	Revision string    `json:"revision"`
	Actor    string    `json:"actor"`
	Time     time.Time `json:"time"`
}

func pinKey(app, cluster string) []byte { return []byte(app + "\x00" + cluster) }

// PutPin records a pin, replacing any earlier pin of the app on that cluster.
func (s *Store) PutPin(p Pin) error {
	if err := checkName("app", p.App); err != nil {
		return fmt.Errorf("put pin: %w", err)
	}
	if err := checkName("cluster", p.Cluster); err != nil {
		return fmt.Errorf("put pin: %w", err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketPins), pinKey(p.App, p.Cluster), p)
	})
	if err != nil {
		return fmt.Errorf("put pin: %w", err)
	}
	return nil
}

// DeletePin removes the pin of app on cluster, if any.
func (s *Store) DeletePin(app, cluster string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPins).Delete(pinKey(app, cluster))
	})
	if err != nil {
		return fmt.Errorf("delete pin: %w", err)
	}
	return nil
}

// ListPins returns every pin, sorted by app and cluster.
func (s *Store) ListPins() ([]Pin, error) {
	var out []Pin
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPins).ForEach(func(k, v []byte) error {
			var p Pin
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("pin %q: %w", strings.ReplaceAll(string(k), "\x00", "/"), err)
			}
			out = append(out, p)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	return out, nil
}
