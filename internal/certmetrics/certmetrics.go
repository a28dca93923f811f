// Package certmetrics exports the validity of the TLS certificates a
// process serves or uses, for the "certificate expiring" alert
// (deploy/monitoring): one pair of gauges per certificate,
//
//	aipress_certificate_not_before_timestamp_seconds{kind, name}
//	aipress_certificate_not_after_timestamp_seconds{kind, name}
//
// in Unix seconds, read from Sources at every scrape. Kinds: KindACME (a
// site domain's public certificate, name the domain), KindInternalCA (the
// edge's internal root, which signs the leaves of internal names; the
// leaves themselves are issued on demand in memory and renewed before use,
// so they are not exported), KindMesh (an edge's or a shard gateway's
// mutual-TLS certificate, name its identity: edge/NAME, shard/NAME).
//
// Both bounds are exported, not only the expiry, so that an alert can
// measure what is left against the certificate's life: mesh certificates
// live 7 days and are renewed with 2 days left, ACME ones live 90 days and
// are renewed with 30 left.
//
// Series are per certificate: an edge exports one per site domain that has
// an ACME certificate in its cache (like its per-site request counters),
// a shard gateway one. A certificate listed twice (kind and name) is
// exported once, with its earliest expiry.
package certmetrics

import (
	"crypto/x509"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aipress/aipress/internal/mtls"
)

// Kinds of certificate.
const (
	KindACME       = "acme"
	KindInternalCA = "internal_ca"
	KindMesh       = "mesh"
)

// Cert is one certificate's validity.
type Cert struct {
	Kind, Name          string
	NotBefore, NotAfter time.Time
}

// Of returns the validity of c (kind and name as given).
func Of(kind, name string, c *x509.Certificate) Cert {
	return Cert{Kind: kind, Name: name, NotBefore: c.NotBefore, NotAfter: c.NotAfter}
}

// Mesh is the certificate of mutual-TLS credentials, named ROLE/NAME
// (edge/e1, shard/alpha); none before they hold one or with c nil.
func Mesh(c *mtls.Credentials) []Cert {
	if c == nil {
		return nil
	}
	leaf := c.Leaf()
	if leaf == nil {
		return nil
	}
	id := c.Self()
	return []Cert{Of(KindMesh, string(id.Role)+"/"+id.Name, leaf)}
}

// Source lists certificates; it runs at every scrape and must be cheap (no
// I/O). It may return nothing (a certificate not obtained yet).
type Source func() []Cert

var (
	dNotBefore = prometheus.NewDesc("aipress_certificate_not_before_timestamp_seconds",
		"Start of a certificate's validity (Unix seconds), by kind (acme, internal_ca, mesh) and name.", []string{"kind", "name"}, nil)
	dNotAfter = prometheus.NewDesc("aipress_certificate_not_after_timestamp_seconds",
		"Expiry of a certificate (Unix seconds), by kind (acme, internal_ca, mesh) and name.", []string{"kind", "name"}, nil)
)

// Collector is a prometheus.Collector of certificates. Add may be called
// at any time, also while it is being scraped.
type Collector struct {
	mu      sync.Mutex
	sources []Source
}

// New returns a collector of sources.
func New(sources ...Source) *Collector { return &Collector{sources: sources} }

// Add adds a source.
func (c *Collector) Add(s Source) {
	c.mu.Lock()
	c.sources = append(c.sources, s)
	c.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- dNotBefore
	ch <- dNotAfter
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	sources := append([]Source(nil), c.sources...)
	c.mu.Unlock()
	type key struct{ kind, name string }
	seen := map[key]Cert{}
	var order []key
	for _, s := range sources {
		for _, ct := range s() {
			if ct.NotAfter.IsZero() {
				continue
			}
			k := key{ct.Kind, ct.Name}
			old, ok := seen[k]
			if !ok {
				order = append(order, k)
			}
			if !ok || ct.NotAfter.Before(old.NotAfter) {
				seen[k] = ct
			}
		}
	}
	for _, k := range order {
		ct := seen[k]
		ch <- prometheus.MustNewConstMetric(dNotBefore, prometheus.GaugeValue, unix(ct.NotBefore), k.kind, k.name)
		ch <- prometheus.MustNewConstMetric(dNotAfter, prometheus.GaugeValue, unix(ct.NotAfter), k.kind, k.name)
	}
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
