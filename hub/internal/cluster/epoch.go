package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
)

// metaVersion is the version of nodeMeta; a node publishing another version is
// not accepted as a peer.
const metaVersion = 1

// nodeMeta is what a replica publishes in its memberlist node metadata
// (at most memberlist.MetaMaxSize bytes).
type nodeMeta struct {
	Version int    `json:"v"`
	GRPC    string `json:"grpc"`
	Epoch   uint64 `json:"epoch"` // the Lamport counter c, without the tag
}

var errMetaVersion = errors.New("unsupported node metadata version")

func encodeMeta(m nodeMeta) []byte {
	b, err := json.Marshal(m)
	if err != nil { // a struct of strings and ints always marshals
		panic(fmt.Sprintf("encode node metadata: %v", err))
	}
	return b
}

func decodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nodeMeta{}, fmt.Errorf("decode node metadata: %w", err)
	}
	if m.Version != metaVersion {
		return nodeMeta{}, fmt.Errorf("decode node metadata: %w %d", errMetaVersion, m.Version)
	}
	return m, nil
}

// nodeTag is the low half of a replica's epochs. It must never change: every
// replica computes every other replica's tag.
func nodeTag(name string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return h.Sum32()
}

// packEpoch makes the epoch of a replica's claims from its counter.
func packEpoch(counter uint64, name string) uint64 {
	return counter<<32 | uint64(nodeTag(name))
}
