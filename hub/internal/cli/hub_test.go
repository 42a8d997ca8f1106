package cli

import (
	"path/filepath"
	"testing"

	"github.com/flotilla-dev/flotilla/hub/internal/hubtest"
)

// testHub is a real hub running in the test's process (hubtest) and the operator config the
// CLI reads (config), as the hub writes DATA_DIR/admin.yaml.
type testHub struct {
	*hubtest.Hub
	config string
}

// startHub starts a hub for t, stopped when t ends, and writes the operator config for it.
func startHub(t testing.TB) *testHub {
	t.Helper()
	h := &testHub{Hub: hubtest.Start(t), config: filepath.Join(t.TempDir(), "admin.yaml")}
	if err := WriteConfig(h.config, &Config{Hub: h.Addr, CA: string(h.CA.CertPEM()), Cert: string(h.AdminCert), Key: string(h.AdminKey)}); err != nil {
		t.Fatal(err)
	}
	return h
}
