package server

import (
	"fmt"

	"filippo.io/age"

	"github.com/flotilla-dev/flotilla/hub/internal/store"
)

// recordAgeRecipient keeps the age recipient an agent sent when it joined in the cluster
// registry, where operators read it (`flotilla clusters -o json`) to encrypt EncryptedSecrets
// for that cluster. It is a public key; the hub never holds an age identity and never decrypts.
// An empty recipient (an older agent) leaves the registry as it is.
func (s *Server) recordAgeRecipient(c store.Cluster, recipient string) error {
	if recipient == "" || recipient == c.AgeRecipient {
		return nil
	}
	if err := checkAgeRecipient(recipient); err != nil {
		return err
	}
	c.AgeRecipient = recipient
	if err := s.cfg.Store.PutCluster(c); err != nil {
		return fmt.Errorf("record age recipient: %w", err)
	}
	return nil
}

// checkAgeRecipient refuses a recipient that is not an age X25519 public key; empty is fine.
func checkAgeRecipient(recipient string) error {
	if recipient == "" {
		return nil
	}
	if _, err := age.ParseX25519Recipient(recipient); err != nil {
		return invalidArgument("age recipient: %v", err)
	}
	return nil
}
