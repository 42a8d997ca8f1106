package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"time"
)

// IssueReplica issues the client certificate a hub replica presents to the other replicas
// (registry pull, fleet-wide queries), with a new ECDSA P-256 key kept only in memory:
// CommonName name (the replica's node name), Organization [RoleHub], client-auth usage only,
// valid for ttl (capped at the CA's expiry). Every replica sharing the CA trusts it.
func (ca *CA) IssueReplica(name string, ttl time.Duration) (tls.Certificate, error) {
	if err := validateOperatorName(name); err != nil {
		return tls.Certificate{}, fmt.Errorf("issue replica certificate: %w", err)
	}
	if ttl <= 0 {
		return tls.Certificate{}, fmt.Errorf("issue replica certificate for %q: ttl %s is not positive", name, ttl)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate replica key: %w", err)
	}
	der, err := ca.sign(ca.clientTemplate(name, RoleHub, ttl), key.Public())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue replica certificate for %q: %w", name, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	c, err := tls.X509KeyPair(encodeCert(der), keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue replica certificate for %q: %w", name, err)
	}
	return c, nil
}
