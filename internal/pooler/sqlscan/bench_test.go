package sqlscan

import "testing"

// BenchmarkScan: Scan over WordPress's own queries (wordpressReads), the
// pooler's per-statement classification cost; one op is one query.
func BenchmarkScan(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Scan(wordpressReads[i%len(wordpressReads)])
	}
}
