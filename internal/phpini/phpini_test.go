package phpini

import (
	"encoding/json"
	"os/exec"
	"testing"
)

// TestSystemSettings: a setting is marked System exactly when PHP itself
// says it is PHP_INI_SYSTEM only (ini_get_all's access 4), since pools do
// not lock System settings: a setting marked System that a script or a
// .user.ini could change would be a hole in every pool.
func TestSystemSettings(t *testing.T) {
	php, err := exec.LookPath("php8.2")
	if err != nil {
		t.Skip("php8.2 not installed (make deps)")
	}
	out, err := exec.Command(php, append(Args(), "-r", `echo json_encode(array_map(fn($e) => $e["access"], ini_get_all(null, true)));`)...).Output()
	if err != nil {
		t.Fatalf("php: %v", err)
	}
	var access map[string]int
	if err := json.Unmarshal(out, &access); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	const iniSystem = 4
	for _, st := range Settings() {
		a, ok := access[st.Name]
		if !ok {
			t.Errorf("%s: PHP does not know it (extension not loaded?)", st.Name)
			continue
		}
		if system := a == iniSystem; system != st.System {
			t.Errorf("%s: PHP's access %d (PHP_INI_SYSTEM only: %v), marked System %v", st.Name, a, system, st.System)
		}
	}
}
