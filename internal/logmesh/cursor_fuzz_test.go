package logmesh

import (
	"maps"
	"slices"
	"testing"
)

// ParseMerged takes cursors from the API's callers: it never panics, and
// what it accepts formats back to a cursor that parses to the same
// positions.
func FuzzParseMerged(f *testing.F) {
	for _, s := range []string{"", "e1.0a0b0c0d@12:345", "a@,b@1:2", "a@1:2,a@1:3", "@1:2", "a@-1:2", "a@1:", ",", "a@18446744073709551616:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMerged(s)
		if err != nil {
			return
		}
		if len(m) > MaxSources {
			t.Fatalf("%d sources", len(m))
		}
		names := slices.Sorted(maps.Keys(m))
		pos := make([]string, len(names))
		for i, n := range names {
			pos[i] = m[n]
		}
		back, err := ParseMerged(formatMerged(names, pos))
		if err != nil || !maps.Equal(back, m) {
			t.Fatalf("%q: formatted back to %v, %v", s, back, err)
		}
	})
}
