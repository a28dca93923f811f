package benchplatform

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestTreeCPU: a child that burns CPU and exits is counted in its parent's
// tree (through the parent's cutime once reaped).
func TestTreeCPU(t *testing.T) {
	before, err := TreeCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// About 0.3 s of CPU in a child shell.
	if out, err := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	after, err := TreeCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 50_000_000 { // 50 ms: the child's CPU is there
		t.Fatalf("tree CPU grew by %v, want the child's (≥ 50ms)", after-before)
	}
	// By name: this process's own name holds the child's CPU (reaped).
	by, err := TreeCPUByName(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	if self := by[strings.TrimSpace(string(comm))]; self < 50_000_000 {
		t.Fatalf("by name %v: want this process's name (%q) to hold the child's CPU", by, comm)
	}
	if _, err := TreeCPU(1 << 30); err == nil {
		t.Fatal("no error for a missing process")
	}
}
