package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Pin holds an app on a cluster at a revision chosen by an operator (`flotilla rollback --to`),
// whatever Git's target revision says, until cleared.
//
// A record is the latest change of the pin: set, or Cleared (a tombstone, kept so that a
// replica holding a stale copy of the pin cannot bring it back). Replicas order changes by
// Time, to the millisecond; see MergePin.
type Pin struct {
	App      string    `json:"app"`
	Cluster  string    `json:"cluster"`
	Revision string    `json:"revision"`
	Actor    string    `json:"actor"`
	Time     time.Time `json:"time"`
	Cleared  bool      `json:"cleared,omitempty"`
}

func pinKey(app, cluster string) []byte { return []byte(app + "\x00" + cluster) }

// PutPin records a change of a pin made on this replica: p pins the app to p.Revision, or
// clears the pin with p.Cleared. Its time is p.Time (now when zero), to the millisecond, moved
// past the change it replaces, so that every replica orders it after that one whatever their
// clocks say. It returns the record stored, to replicate.
func (s *Store) PutPin(p Pin) (Pin, error) {
	if err := checkPin(p); err != nil {
		return Pin{}, fmt.Errorf("put pin: %w", err)
	}
	if p.Time.IsZero() {
		p.Time = time.Now()
	}
	if p.Cleared {
		p.Revision = ""
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPins)
		at := p.Time.UnixMilli()
		var cur Pin
		switch err := getJSON(b, pinKey(p.App, p.Cluster), &cur); {
		case errors.Is(err, errNotFound):
		case err != nil:
			return fmt.Errorf("decode: %w", err)
		default:
			at = max(at, cur.Time.UnixMilli()+1)
		}
		p.Time = time.UnixMilli(at)
		return putJSON(b, pinKey(p.App, p.Cluster), p)
	})
	if err != nil {
		return Pin{}, fmt.Errorf("put pin: %w", err)
	}
	return p, nil
}

// MergePin folds a pin record from another replica into the store, keeping the later change:
// the later Time, to the millisecond; at the same millisecond a clear, then the greater
// revision, then the greater actor. The merge commutes and is idempotent. It reports whether
// the store changed.
func (s *Store) MergePin(in Pin) (changed bool, err error) {
	if err := checkPin(in); err != nil {
		return false, fmt.Errorf("merge pin: %w", err)
	}
	if in.Time.IsZero() {
		return false, fmt.Errorf("merge pin %s/%s: no time", in.App, in.Cluster)
	}
	if in.Cleared {
		in.Revision = ""
	}
	in.Time = time.UnixMilli(in.Time.UnixMilli())
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPins)
		var cur Pin
		switch err := getJSON(b, pinKey(in.App, in.Cluster), &cur); {
		case errors.Is(err, errNotFound):
		case err != nil:
			return fmt.Errorf("decode: %w", err)
		case !laterPin(in, cur):
			return nil
		}
		changed = true
		return putJSON(b, pinKey(in.App, in.Cluster), in)
	})
	if err != nil {
		return false, fmt.Errorf("merge pin %s/%s: %w", in.App, in.Cluster, err)
	}
	return changed, nil
}

// laterPin reports whether a is a later change of a pin than b.
func laterPin(a, b Pin) bool {
	switch {
	case a.Time.UnixMilli() != b.Time.UnixMilli():
		return a.Time.UnixMilli() > b.Time.UnixMilli()
	case a.Cleared != b.Cleared:
		return a.Cleared
	case a.Revision != b.Revision:
		return a.Revision > b.Revision
	}
	return a.Actor > b.Actor
}

func checkPin(p Pin) error {
	if err := checkName("app", p.App); err != nil {
		return err
	}
	if err := checkName("cluster", p.Cluster); err != nil {
		return err
	}
	if !p.Cleared && p.Revision == "" {
		return fmt.Errorf("pin %s/%s: no revision", p.App, p.Cluster)
	}
	return nil
}

// ListPins returns the pins in force (not cleared), sorted by app and cluster.
func (s *Store) ListPins() ([]Pin, error) {
	all, err := s.ListPinRecords()
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, p := range all {
		if !p.Cleared {
			out = append(out, p)
		}
	}
	return out, nil
}

// ListPinRecords returns every pin record, cleared ones included, sorted by app and cluster:
// what replicas exchange.
func (s *Store) ListPinRecords() ([]Pin, error) {
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
