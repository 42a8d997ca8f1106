package render

import (
	"bytes"
	"errors"
	"fmt"

	"sigs.k8s.io/kustomize/kyaml/filesys"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// MaxAliasNodes bounds the YAML nodes that aliases may add to one file once expanded.
// Kustomize expands every alias of what it reads (kyaml's DeAnchor copies the anchored node
// for each alias), without bound and without interruption: a "billion laughs" file of a few
// hundred bytes would take all memory and hold the build slot for good.
const MaxAliasNodes = 100_000

// ErrAliases is wrapped by the errors of files whose YAML aliases expand too far.
var ErrAliases = errors.New("YAML aliases expand too far")

// aliasGuardFS refuses to return a file whose YAML aliases would expand beyond MaxAliasNodes.
type aliasGuardFS struct {
	filesys.FileSystem
}

var _ filesys.FileSystem = aliasGuardFS{}

func (a aliasGuardFS) ReadFile(p string) ([]byte, error) {
	data, err := a.FileSystem.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if err := checkAliases(data); err != nil {
		return nil, fmt.Errorf("file %s: %w", p, err)
	}
	return data, nil
}

// checkAliases parses data as a YAML stream, without expanding aliases, and fails when its
// aliases would add more than MaxAliasNodes nodes. Data that is not YAML passes: whoever
// parses it reports that.
func checkAliases(data []byte) error {
	if !bytes.ContainsRune(data, '*') {
		return nil // no alias
	}
	dec := kyaml.NewDecoder(bytes.NewReader(data))
	c := aliasCounter{sizes: map[*kyaml.Node]int{}}
	for {
		var doc kyaml.Node
		if err := dec.Decode(&doc); err != nil {
			return nil // the end, or not YAML
		}
		if _, err := c.size(&doc, 0); err != nil {
			return err
		}
	}
}

// aliasCounter counts the nodes of a document as if its aliases were expanded.
type aliasCounter struct {
	sizes map[*kyaml.Node]int // expanded size of anchored nodes already counted
	added int                 // nodes added by aliases so far
}

func (c *aliasCounter) size(n *kyaml.Node, depth int) (int, error) {
	if depth > 1000 {
		return 0, fmt.Errorf("nested more than 1000 levels: %w", ErrAliases)
	}
	if n.Kind == kyaml.AliasNode {
		if n.Alias == nil {
			return 1, nil
		}
		s, ok := c.sizes[n.Alias]
		if !ok {
			var err error
			if s, err = c.size(n.Alias, depth+1); err != nil {
				return 0, err
			}
		}
		c.added += s
		if c.added > MaxAliasNodes {
			return 0, fmt.Errorf("aliases add more than %d nodes: %w", MaxAliasNodes, ErrAliases)
		}
		return s, nil
	}
	total := 1
	for _, child := range n.Content {
		s, err := c.size(child, depth+1)
		if err != nil {
			return 0, err
		}
		total += s
	}
	if n.Anchor != "" {
		c.sizes[n] = total
	}
	return total, nil
}
