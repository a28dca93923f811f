// Package attacktest holds tools the isolation tests attack with: for
// now, a native library whose constructor proves it ran (the LD_PRELOAD
// through putenv and mail() escape). It is imported by tests only.
package attacktest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// preloadSource is a library whose constructor creates the file MARKER
// (and drops LD_PRELOAD, so the programs it then runs do not load it).
const preloadSource = `#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) {
	unsetenv("LD_PRELOAD");
	int fd = open(MARKER, O_WRONLY | O_CREAT, 0644);
	if (fd >= 0) close(fd);
}
`

// PreloadLibrary compiles, in dir, a shared library whose constructor
// creates marker, and returns its path (mode 0755); "" when gcc is missing.
func PreloadLibrary(t testing.TB, dir, marker string) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		return ""
	}
	src := filepath.Join(dir, "evil.c")
	if err := os.WriteFile(src, []byte(preloadSource), 0o644); err != nil {
		t.Fatal(err)
	}
	so := filepath.Join(dir, "evil.so")
	if out, err := exec.Command("gcc", "-shared", "-fPIC", "-o", so, fmt.Sprintf("-DMARKER=%q", marker), src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v: %s", err, out)
	}
	if err := os.Chmod(so, 0o755); err != nil {
		t.Fatal(err)
	}
	return so
}
