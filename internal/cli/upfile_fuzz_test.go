package cli

import (
	"bytes"
	"math"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"
)

// FuzzUpConfigFile decodes `aipress up --config` files (seeds:
// testdata/fuzz/FuzzUpConfigFile): what is accepted is an empty file, null,
// or a mapping of known keys only (an unknown or misspelt key is an error,
// never silently ignored), rates are finite numbers, and the decoded
// settings survive being written back as YAML and read again.
func FuzzUpConfigFile(f *testing.F) {
	known := upFileKeys()
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseUpFile(b)
		if err != nil {
			if got != (upFile{}) {
				t.Fatalf("refused file, yet settings %+v", got)
			}
			return
		}
		if len(bytes.TrimSpace(b)) > 0 {
			var doc any
			if err := yaml.Unmarshal(b, &doc); err != nil {
				t.Fatalf("accepted by the strict decoder, refused by the lax one: %v", err)
			}
			switch d := doc.(type) {
			case nil:
			case map[string]any:
				for k := range d {
					if !known[k] {
						t.Fatalf("accepted a file with the unknown key %q", k)
					}
				}
			default:
				t.Fatalf("accepted a file that is a %T, not a mapping", doc)
			}
		}
		for _, r := range []*float64{got.RateIP, got.RateSite} {
			if r != nil && (math.IsNaN(*r) || math.IsInf(*r, 0)) {
				t.Fatalf("accepted a rate of %v", *r)
			}
		}
		out, err := yaml.Marshal(got)
		if err != nil {
			t.Fatalf("write back %+v: %v", got, err)
		}
		back, err := parseUpFile(out)
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("round trip through\n%s\ngave %+v, %v; want %+v", out, back, err, got)
		}
	})
}
