// Package kube is the agent's own Kubernetes client for what it reads and writes besides the
// objects it applies (those go through the dynamic client): Secrets, Namespaces and Events of
// core/v1 (client.go), and the API server's version and served APIs (discovery.go).
// client-go's clientset and discovery client would link the types, clients, informers,
// listers and OpenAPI models of every API group, and the agent's executable, and so its
// memory, grew with them.
package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// Client reads and writes core/v1 objects with a scheme of core/v1 alone.
type Client struct {
	rc     *rest.RESTClient
	params runtime.ParameterCodec
}

// NewForConfig returns a Client for the cluster of cfg (with its own rate limiter, as
// client-go's clients have).
func NewForConfig(cfg *rest.Config) (*Client, error) {
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.NegotiatedSerializer = codecs(scheme)
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("core/v1 client: %w", err)
	}
	return &Client{rc: rc, params: runtime.NewParameterCodec(scheme)}, nil
}

// newScheme returns a scheme of core/v1 alone (with the metav1 option types and Status).
func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("core/v1 scheme: %w", err)
	}
	return scheme, nil
}

// codecs are the serializers of scheme's types, as client-go's typed clients have them.
func codecs(scheme *runtime.Scheme) runtime.NegotiatedSerializer {
	return rest.CodecFactoryForGeneratedClient(scheme, serializer.NewCodecFactory(scheme)).WithoutConversion()
}

// RESTClient is the core/v1 REST client (for list-watches).
func (c *Client) RESTClient() rest.Interface { return c.rc }

// Secrets are the Secrets of namespace.
func (c *Client) Secrets(namespace string) Objects[*corev1.Secret, *corev1.SecretList] {
	return Objects[*corev1.Secret, *corev1.SecretList]{c: c, resource: "secrets", namespace: namespace,
		newObj: func() *corev1.Secret { return &corev1.Secret{} }, newList: func() *corev1.SecretList { return &corev1.SecretList{} }}
}

// Namespaces are the cluster's Namespaces.
func (c *Client) Namespaces() Objects[*corev1.Namespace, *corev1.NamespaceList] {
	return Objects[*corev1.Namespace, *corev1.NamespaceList]{c: c, resource: "namespaces",
		newObj: func() *corev1.Namespace { return &corev1.Namespace{} }, newList: func() *corev1.NamespaceList { return &corev1.NamespaceList{} }}
}

// Events are the Events of namespace.
func (c *Client) Events(namespace string) Objects[*corev1.Event, *corev1.EventList] {
	return Objects[*corev1.Event, *corev1.EventList]{c: c, resource: "events", namespace: namespace,
		newObj: func() *corev1.Event { return &corev1.Event{} }, newList: func() *corev1.EventList { return &corev1.EventList{} }}
}

// object is a core/v1 object.
type object interface {
	runtime.Object
	GetName() string
}

// Objects reads and writes one resource of core/v1, in one namespace ("" for all namespaces,
// or for a cluster-scoped resource). Its methods are those of client-go's typed clients, and
// its errors the API server's (apierrors.IsNotFound, IsAlreadyExists, IsConflict...).
type Objects[T object, L runtime.Object] struct {
	c         *Client
	resource  string
	namespace string
	newObj    func() T
	newList   func() L
}

// request is r for this resource, in protobuf unless the config asks for another content type,
// as client-go's typed clients of built-in types speak (a state Secret of 900 KiB is a third
// of a second of base64 and JSON each way under the race detector, and far less in protobuf).
func (o Objects[T, L]) request(r *rest.Request) *rest.Request {
	return r.UseProtobufAsDefault().NamespaceIfScoped(o.namespace, o.namespace != "").Resource(o.resource)
}

// Get reads the object name.
func (o Objects[T, L]) Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error) {
	out := o.newObj()
	err := o.request(o.c.rc.Get()).Name(name).VersionedParams(&opts, o.c.params).Do(ctx).Into(out)
	return out, err
}

// List lists the objects opts select.
func (o Objects[T, L]) List(ctx context.Context, opts metav1.ListOptions) (L, error) {
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	out := o.newList()
	err := o.request(o.c.rc.Get()).VersionedParams(&opts, o.c.params).Timeout(timeout).Do(ctx).Into(out)
	return out, err
}

// Create creates obj and returns it as the API server stored it.
func (o Objects[T, L]) Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error) {
	out := o.newObj()
	err := o.request(o.c.rc.Post()).VersionedParams(&opts, o.c.params).Body(obj).Do(ctx).Into(out)
	return out, err
}

// Update replaces obj (a conflict when its resourceVersion is not the stored one).
func (o Objects[T, L]) Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error) {
	out := o.newObj()
	err := o.request(o.c.rc.Put()).Name(obj.GetName()).VersionedParams(&opts, o.c.params).Body(obj).Do(ctx).Into(out)
	return out, err
}

// Delete deletes the object name.
func (o Objects[T, L]) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return o.request(o.c.rc.Delete()).Name(name).Body(&opts).Do(ctx).Error()
}
