package promote

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// kustomizationNames are the file names kustomize looks for, in its order.
var kustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// ErrNothingToPromote is wrapped when the target already carries what the source declares.
var ErrNothingToPromote = errors.New("nothing to promote")

// imageFields are the fields of a kustomize images entry that a promotion copies.
var imageFields = []string{"newName", "newTag", "digest"}

// FindKustomization returns the path and content of the kustomization file in dir.
func FindKustomization(fsys fs.FS, dir string) (string, []byte, error) {
	for _, name := range kustomizationNames {
		p := path.Join(dir, name)
		data, err := fs.ReadFile(fsys, p)
		if err == nil {
			return p, data, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return "", nil, fmt.Errorf("%s: no kustomization file (%s): only kustomize overlays can be promoted", dir, strings.Join(kustomizationNames, ", "))
}

// ImageChange is one image whose reference a promotion changes in the target overlay.
type ImageChange struct {
	Name string
	From string // the target's previous override, "" when it had none (the base's applied)
	To   string
}

// CopyImages returns dst, a kustomization, with the images entries of src set: each entry of
// src (by name) replaces the newName, newTag and digest of dst's entry of that name, or is
// added. Everything else in dst is kept, comments included. It fails with
// ErrNothingToPromote when src declares no images or dst already carries them.
func CopyImages(src, dst []byte) ([]byte, []ImageChange, error) {
	srcNode, err := yaml.Parse(string(src))
	if err != nil {
		return nil, nil, fmt.Errorf("source kustomization: %w", err)
	}
	dstNode, err := yaml.Parse(string(dst))
	if err != nil {
		return nil, nil, fmt.Errorf("target kustomization: %w", err)
	}
	srcImages, err := srcNode.Pipe(yaml.Lookup("images"))
	if err != nil {
		return nil, nil, fmt.Errorf("source kustomization: images: %w", err)
	}
	if srcImages == nil || len(srcImages.Content()) == 0 {
		return nil, nil, fmt.Errorf("the source overlay declares no images: %w", ErrNothingToPromote)
	}
	if srcImages.YNode().Kind != yaml.SequenceNode {
		return nil, nil, errors.New("source kustomization: images is not a list")
	}
	dstImages, err := dstNode.Pipe(yaml.LookupCreate(yaml.SequenceNode, "images"))
	if err != nil {
		return nil, nil, fmt.Errorf("target kustomization: images: %w", err)
	}
	var changes []ImageChange
	elems, err := srcImages.Elements()
	if err != nil {
		return nil, nil, fmt.Errorf("source kustomization: images: %w", err)
	}
	for _, e := range elems {
		name := fieldValue(e, "name")
		if name == "" {
			return nil, nil, errors.New("source kustomization: an images entry has no name")
		}
		target, err := dstImages.Pipe(yaml.MatchElement("name", name))
		if err != nil {
			return nil, nil, fmt.Errorf("target kustomization: images %q: %w", name, err)
		}
		to := imageRef(e, name)
		if target == nil {
			entry := yaml.NewMapRNode(nil)
			if err := entry.PipeE(yaml.SetField("name", yaml.NewStringRNode(name))); err != nil {
				return nil, nil, err
			}
			if err := copyImageFields(e, entry); err != nil {
				return nil, nil, err
			}
			if err := dstImages.PipeE(yaml.Append(entry.YNode())); err != nil {
				return nil, nil, fmt.Errorf("target kustomization: images: %w", err)
			}
			changes = append(changes, ImageChange{Name: name, To: to})
			continue
		}
		from := imageRef(target, name)
		if from == to {
			continue
		}
		if err := copyImageFields(e, target); err != nil {
			return nil, nil, err
		}
		changes = append(changes, ImageChange{Name: name, From: from, To: to})
	}
	if len(changes) == 0 {
		return nil, nil, fmt.Errorf("the target overlay already carries the source's images: %w", ErrNothingToPromote)
	}
	out, err := dstNode.String()
	if err != nil {
		return nil, nil, fmt.Errorf("target kustomization: %w", err)
	}
	return []byte(out), changes, nil
}

// copyImageFields sets dst's newName, newTag and digest to src's, removing those src lacks.
func copyImageFields(src, dst *yaml.RNode) error {
	for _, f := range imageFields {
		v, err := src.Pipe(yaml.Lookup(f))
		if err != nil {
			return err
		}
		if v == nil {
			if _, err := dst.Pipe(yaml.Clear(f)); err != nil {
				return err
			}
			continue
		}
		scalar := *v.YNode() // its style (quotes) too, not its comments
		scalar.HeadComment, scalar.LineComment, scalar.FootComment = "", "", ""
		if err := dst.PipeE(yaml.SetField(f, yaml.NewRNode(&scalar))); err != nil {
			return fmt.Errorf("images %s: %w", f, err)
		}
	}
	return nil
}

// imageRef shows an images entry as the reference it makes: [newName]:newTag@digest.
func imageRef(e *yaml.RNode, name string) string {
	ref := name
	if n := fieldValue(e, "newName"); n != "" {
		ref = n
	}
	if t := fieldValue(e, "newTag"); t != "" {
		ref += ":" + t
	}
	if d := fieldValue(e, "digest"); d != "" {
		ref += "@" + d
	}
	return ref
}

func fieldValue(e *yaml.RNode, field string) string {
	v, err := e.Pipe(yaml.Lookup(field))
	if err != nil || v == nil {
		return ""
	}
	return v.YNode().Value
}
