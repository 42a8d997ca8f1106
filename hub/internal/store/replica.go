package store

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// This file folds registry records replicated from other hub replicas into this one. The
// merges commute and are idempotent, so replicas that exchanged the same records in any
// order, any number of times, hold the same registry:
//
//   - a revocation sticks: a cluster revoked on either side stays revoked;
//   - a token's use sticks: the earliest redemption wins;
//   - a cluster added on two replicas at once keeps the labels of the earliest addition;
//   - what is local to a replica (agent version, last seen) is never replaced.
//
// Times are compared to the millisecond, the precision they travel with between replicas.

// MergeCluster folds a cluster record from another replica into the registry. It reports
// whether the registry changed and whether the merge revoked a cluster that was not revoked
// here.
func (s *Store) MergeCluster(in Cluster) (changed, revoked bool, err error) {
	if err := checkName("cluster", in.Name); err != nil {
		return false, false, fmt.Errorf("merge cluster: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketClusters)
		var cur Cluster
		switch err := getJSON(b, []byte(in.Name), &cur); {
		case errors.Is(err, errNotFound):
			changed, revoked = true, in.Revoked
			return putJSON(b, []byte(in.Name), Cluster{Name: in.Name, Labels: in.Labels, CreatedAt: in.CreatedAt, Revoked: in.Revoked})
		case err != nil:
			return fmt.Errorf("decode: %w", err)
		}
		next := mergeCluster(cur, in)
		if clusterEqual(cur, next) {
			return nil
		}
		changed, revoked = true, next.Revoked && !cur.Revoked
		return putJSON(b, []byte(in.Name), next)
	})
	if err != nil {
		return false, false, fmt.Errorf("merge cluster %s: %w", in.Name, err)
	}
	return changed, revoked, nil
}

// mergeCluster is the replicated part of cur updated with in.
func mergeCluster(cur, in Cluster) Cluster {
	next := cur
	next.Revoked = cur.Revoked || in.Revoked
	if laterAddition(cur, in) {
		next.Labels, next.CreatedAt = in.Labels, in.CreatedAt
	}
	return next
}

// laterAddition reports whether cur records a later addition of the cluster than in (so in's
// labels win): the earlier CreatedAt wins, then the smaller label set in a canonical order.
// A record without a creation time (written before replication) loses to one with.
func laterAddition(cur, in Cluster) bool {
	switch {
	case in.CreatedAt.IsZero():
		return false
	case cur.CreatedAt.IsZero():
		return true
	case in.CreatedAt.UnixMilli() != cur.CreatedAt.UnixMilli():
		return in.CreatedAt.UnixMilli() < cur.CreatedAt.UnixMilli()
	}
	return labelKey(in.Labels) < labelKey(cur.Labels)
}

func labelKey(l map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(l)) {
		b.WriteString(k + "=" + l[k] + "\x00")
	}
	return b.String()
}

func clusterEqual(a, b Cluster) bool {
	return a.Revoked == b.Revoked && a.CreatedAt.UnixMilli() == b.CreatedAt.UnixMilli() && maps.Equal(a.Labels, b.Labels)
}

// GetToken returns the join token id; ok is false if there is none.
func (s *Store) GetToken(id string) (t JoinToken, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		switch err := getJSON(tx.Bucket(bucketTokens), []byte(id), &t); {
		case errors.Is(err, errNotFound):
			return nil
		case err != nil:
			return err
		}
		ok = true
		return nil
	})
	if err != nil {
		return JoinToken{}, false, fmt.Errorf("get join token %s: %w", id, err)
	}
	return t, ok, nil
}

// ListTokens returns the join tokens that have not expired at now, sorted by id.
func (s *Store) ListTokens(now time.Time) ([]JoinToken, error) {
	var out []JoinToken
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			var t JoinToken
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decode join token %s: %w", k, err)
			}
			if now.Before(t.ExpiresAt) {
				out = append(out, t)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	return out, nil
}

// MergeToken folds a join token from another replica into the store: an unknown token is
// added; for a known one the earliest use wins (a token used anywhere is used everywhere).
// The secret hash and cluster of a known token are never replaced. It reports whether the
// store changed.
func (s *Store) MergeToken(in JoinToken) (changed bool, err error) {
	if err := checkName("token", in.ID); err != nil {
		return false, fmt.Errorf("merge join token: %w", err)
	}
	if err := checkName("cluster", in.Cluster); err != nil {
		return false, fmt.Errorf("merge join token %s: %w", in.ID, err)
	}
	if len(in.SecretHash) != sha256.Size || in.ExpiresAt.IsZero() {
		return false, fmt.Errorf("merge join token %s: incomplete record", in.ID)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		var cur JoinToken
		switch err := getJSON(b, []byte(in.ID), &cur); {
		case errors.Is(err, errNotFound):
			changed = true
			return putJSON(b, []byte(in.ID), in)
		case err != nil:
			return fmt.Errorf("decode: %w", err)
		}
		if in.UsedAt.IsZero() || (!cur.UsedAt.IsZero() && in.UsedAt.UnixMilli() >= cur.UsedAt.UnixMilli()) {
			return nil
		}
		cur.UsedAt, cur.UsedBy = in.UsedAt, in.UsedBy // the earliest use and the key that made it
		changed = true
		return putJSON(b, []byte(in.ID), cur)
	})
	if err != nil {
		return false, fmt.Errorf("merge join token %s: %w", in.ID, err)
	}
	return changed, nil
}
