package apply

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"
)

// compact is the watch caches' transform: it drops from each object what no reader of the
// cache (drift, health, apply, prune, owners) needs, before the informer stores it, so that an
// agent managing many objects does not hold each of them twice over.
//
//   - kubectl's last-applied-configuration annotation, a copy of the whole object kubectl last
//     applied: never compared, diffed or shown (comparableFields).
//   - the field set (fieldsV1) of the agent's own apply entry in metadata.managedFields, as
//     large as what the agent applies. The entry itself stays: owns() reads that the agent
//     applied the object. Other managers' entries stay whole: ignoreDifferences rules with
//     managedFieldsManagers read the fields they own (shared/ignore).
//
// Status stays whole: the health checks read it. Objects the cache serves are the informer's
// own and never written back (applies send the desired object, not the cached one).
func compact(fieldManager string) cache.TransformFunc {
	return func(obj any) (any, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil
		}
		md, ok := u.Object["metadata"].(map[string]any)
		if !ok {
			return obj, nil
		}
		if ann, ok := md["annotations"].(map[string]any); ok {
			if _, found := ann[annotationLastApplied]; found {
				delete(ann, annotationLastApplied)
				if len(ann) == 0 {
					delete(md, "annotations")
				}
			}
		}
		if mfs, ok := md["managedFields"].([]any); ok {
			for _, e := range mfs {
				entry, ok := e.(map[string]any)
				if ok && entry["manager"] == fieldManager && entry["operation"] == "Apply" {
					delete(entry, "fieldsV1")
				}
			}
		}
		return u, nil
	}
}
