package wordpress

import (
	"crypto/rand"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const phpassFile = "/usr/share/wordpress/wp-includes/class-phpass.php"

// php runs code with WordPress's own phpass loaded and returns its output.
func php(t *testing.T, code string, args ...string) string {
	t.Helper()
	if _, err := os.Stat(phpassFile); err != nil {
		t.Skipf("WordPress's phpass: %v", err)
	}
	full := "require '" + phpassFile + "'; $h = new PasswordHash(8, true); " + code
	out, err := exec.Command("php", append([]string{"-r", full}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("php: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPortableHashWordPress: hashes made here pass WordPress's own
// CheckPassword (and wrong passwords do not), and hashes WordPress makes
// pass CheckPortable.
func TestPortableHashWordPress(t *testing.T) {
	for _, pw := range []string{"aB3dE6gH9jK2mN5pQ8sT1vW4", "", "ünïcødé pass 'quoted' \"too\""} {
		for _, log2 := range []int{PortableMinLog2, 8, 13} {
			hash, err := PortableHash(pw, log2, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if len(hash) != 34 || !strings.HasPrefix(hash, "$P$") {
				t.Fatalf("hash %q", hash)
			}
			got := php(t, `echo ($h->CheckPassword($argv[1], $argv[2]) ? "ok" : "no"), ($h->CheckPassword($argv[1] . "x", $argv[2]) ? "ok" : "no");`, pw, hash)
			if got != "okno" {
				t.Errorf("WordPress checking %q against %s (2^%d): %s, want okno", pw, hash, log2, got)
			}
			if !CheckPortable(pw, hash) || CheckPortable(pw+"x", hash) {
				t.Errorf("CheckPortable disagrees on %s", hash)
			}
		}
		wpHash := php(t, `echo $h->HashPassword($argv[1]);`, pw)
		if !CheckPortable(pw, wpHash) || CheckPortable(pw+"x", wpHash) {
			t.Errorf("WordPress's hash %s of %q does not check here", wpHash, pw)
		}
	}
	if _, err := PortableHash("x", PortableMinLog2-1, rand.Reader); err == nil {
		t.Error("2^6 rounds accepted; WordPress refuses them")
	}
}
