package certmetrics

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aipress/aipress/internal/mtls"
)

// TestCollector: every certificate of every source is exported with both
// bounds; one listed twice keeps its earliest expiry; sources added later
// count; certificates without an expiry (none yet) are left out.
func TestCollector(t *testing.T) {
	day := func(d int) time.Time { return time.Unix(1_800_000_000, 0).Add(time.Duration(d) * 24 * time.Hour) }
	c := New(func() []Cert {
		return []Cert{
			Of(KindInternalCA, "AIPress internal CA", &x509.Certificate{NotBefore: day(-100), NotAfter: day(3550)}),
			{Kind: KindACME, Name: "a.example", NotBefore: day(-60), NotAfter: day(30)},
			{Kind: KindACME, Name: "a.example", NotBefore: day(-80), NotAfter: day(10)},
			{Kind: KindMesh, Name: "edge/e1"}, // no certificate yet
		}
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	c.Add(func() []Cert { return []Cert{{Kind: KindMesh, Name: "edge/e1", NotBefore: day(-5), NotAfter: day(2)}} })
	want := `
# HELP aipress_certificate_not_after_timestamp_seconds Expiry of a certificate (Unix seconds), by kind (acme, internal_ca, mesh) and name.
# TYPE aipress_certificate_not_after_timestamp_seconds gauge
aipress_certificate_not_after_timestamp_seconds{kind="acme",name="a.example"} 1.800864e+09
aipress_certificate_not_after_timestamp_seconds{kind="internal_ca",name="AIPress internal CA"} 2.10672e+09
aipress_certificate_not_after_timestamp_seconds{kind="mesh",name="edge/e1"} 1.8001728e+09
# HELP aipress_certificate_not_before_timestamp_seconds Start of a certificate's validity (Unix seconds), by kind (acme, internal_ca, mesh) and name.
# TYPE aipress_certificate_not_before_timestamp_seconds gauge
aipress_certificate_not_before_timestamp_seconds{kind="acme",name="a.example"} 1.793088e+09
aipress_certificate_not_before_timestamp_seconds{kind="internal_ca",name="AIPress internal CA"} 1.79136e+09
aipress_certificate_not_before_timestamp_seconds{kind="mesh",name="edge/e1"} 1.799568e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestMesh: credentials without a certificate give none; with one, its
// validity under ROLE/NAME.
func TestMesh(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	a, err := mtls.NewAuthority([]byte("a test secret of the mesh CA, 32+ bytes"), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	c, err := mtls.LoadCredentials(t.TempDir(), mtls.Identity{Role: mtls.RoleShard, Name: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	if got := Mesh(c); len(got) != 0 {
		t.Errorf("before a certificate: %v", got)
	}
	if got := Mesh(nil); len(got) != 0 {
		t.Errorf("nil credentials: %v", got)
	}
	csr, err := c.CSR()
	if err != nil {
		t.Fatal(err)
	}
	cert, notAfter, err := a.Issue(csr, c.Self(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Install(cert, a.CertPEM()); err != nil {
		t.Fatal(err)
	}
	got := Mesh(c)
	if len(got) != 1 || got[0].Kind != KindMesh || got[0].Name != "shard/alpha" || !got[0].NotAfter.Equal(notAfter) ||
		got[0].NotAfter.Sub(got[0].NotBefore) < mtls.DefaultTTL {
		t.Errorf("Mesh = %+v, want shard/alpha until %v", got, notAfter)
	}
}
