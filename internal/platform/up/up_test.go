package up

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/aipress/aipress/internal/platform/edgenode"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// `aipress up` that fails to start after binding its ports leaves none of
// them bound: the API's, the edge's HTTP and HTTPS.
func TestFailedStartClosesEveryListener(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(dir string) error
	}{
		{"edge: purge secret unreadable", func(dir string) error { return os.Mkdir(filepath.Join(dir, edgenode.PurgeSecretFile), 0o700) }},
		{"control plane: store unopenable", func(dir string) error { return os.Mkdir(filepath.Join(dir, "aipress.db"), 0o700) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tt.setup(dir); err != nil {
				t.Fatal(err)
			}
			cfg := Config{DataDir: dir, APIAddr: freeAddr(t), HTTPAddr: freeAddr(t), HTTPSAddr: freeAddr(t),
				ACMECA: edgenode.ACMEOff, SiteFirewall: "off"}
			err := Run(context.Background(), cfg)
			if err == nil {
				t.Fatal("no error")
			}
			for _, a := range []string{cfg.APIAddr, cfg.HTTPAddr, cfg.HTTPSAddr} {
				ln, lerr := net.Listen("tcp", a)
				if lerr != nil {
					t.Errorf("after %v: %s still bound", err, a)
					continue
				}
				ln.Close()
			}
		})
	}
}
