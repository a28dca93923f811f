package mariadb

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestMemoryOptions: a server runs with the memory options MemoryOptions
// gives (its own buffer pool size), as the running server reports them.
func TestMemoryOptions(t *testing.T) {
	const pool = 48 << 20
	s := startServerWith(t, func(s *Server) { s.BufferPool = pool })
	ctx := context.Background()
	for _, o := range MemoryOptions(pool) {
		name, want, _ := strings.Cut(o, "=")
		got, err := s.QueryString(ctx, "SELECT @@GLOBAL."+name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n, err := ParseSize(want); err == nil {
			want = FormatSize(n)
			if g, err := ParseSize(got); err == nil {
				got = FormatSize(g)
			}
		}
		if got == "0" && want == "OFF" { // a boolean reads back as 0/1
			got = "OFF"
		}
		if got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
}

// TestMallocEnv: the running mariadbd has MallocEnv in its environment
// (glibc reads it at start: one malloc arena).
func TestMallocEnv(t *testing.T) {
	s := startServerWith(t, nil)
	pid := s.Process().PID()
	if pid <= 0 {
		t.Fatal("no mariadbd pid")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, kv := range strings.Split(string(b), "\x00") {
		have[kv] = true
	}
	if len(MallocEnv()) == 0 {
		t.Fatal("MallocEnv is empty")
	}
	for _, kv := range MallocEnv() {
		if !have[kv] {
			t.Errorf("mariadbd (pid %d) runs without %s", pid, kv)
		}
	}
}

func TestSizes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		out  string
	}{
		{"128M", 128 << 20, "128M"},
		{"1g", 1 << 30, "1G"},
		{"64K", 64 << 10, "64K"},
		{"1000", 1000, "1000"},
		{"0", 0, "0"},
		{"1536M", 1536 << 20, "1536M"},
		{"", -1, ""},
		{"12X", -1, ""},
		{"-1M", -1, ""},
		{"M", -1, ""},
	} {
		got, err := ParseSize(c.in)
		if c.want < 0 {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
		if f := FormatSize(got); f != c.out {
			t.Errorf("FormatSize(%d) = %q, want %q", got, f, c.out)
		}
	}
	if err := CheckBufferPool(16 << 20); err == nil {
		t.Error("a 16M buffer pool was accepted")
	}
	for _, n := range []int64{0, MinBufferPool, DefaultBufferPool} {
		if err := CheckBufferPool(n); err != nil {
			t.Errorf("CheckBufferPool(%d): %v", n, err)
		}
	}
}
