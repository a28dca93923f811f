package caps

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestHasMatchesProc: Has agrees with the kernel's own account of the
// effective set (/proc/self/status, CapEff) for every capability.
func TestHasMatchesProc(t *testing.T) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	var eff uint64
	found := false
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			eff, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			found = true
		}
	}
	if !found {
		t.Skip("no CapEff line")
	}
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if want := eff&(1<<uint(c)) != 0; Has(c) != want {
			t.Errorf("Has(%d) = %v, CapEff says %v", c, !want, want)
		}
	}
	if Has(-1) || Has(64) {
		t.Error("Has accepts a capability number out of range")
	}
}
