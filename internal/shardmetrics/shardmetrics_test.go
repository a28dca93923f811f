package shardmetrics

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestParseStatus(t *testing.T) {
	sample, err := os.ReadFile(filepath.Join("testdata", "status.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body string
		want *poolStatus // nil: an error
	}{
		// php-fpm's answer: the worker answering counts itself active.
		{"php-fpm", string(sample), &poolStatus{accepted: 7, queue: 2, idle: 1, active: 2, maxChildrenReached: 5}},
		{"only the answering worker", "accepted conn: 1\nlisten queue: 0\nidle processes: 0\nactive processes: 1\nmax children reached: 0\nslow requests: 0\n",
			&poolStatus{accepted: 1}},
		{"a field missing", "accepted conn: 1\nlisten queue: 0\n", nil},
		{"not a number", "accepted conn: many\nlisten queue: 0\nidle processes: 0\nactive processes: 1\nmax children reached: 0\nslow requests: 0\n", nil},
		{"PHP's output instead", "<html>File not found.</html>", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tc.body))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("no error for %q: %+v", tc.body, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != *tc.want {
				t.Errorf("got %+v, want %+v", *got, *tc.want)
			}
		})
	}
}

// TestPoolWorkers counts workers by pool among a process tree written as
// a /proc directory: the master (a child of a wrapper) and its workers
// count; a worker's child titled as a worker and the workers of another
// master do not.
func TestPoolWorkers(t *testing.T) {
	proc := t.TempDir()
	add := func(pid, ppid int, comm, cmdline string) {
		dir := filepath.Join(proc, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// A whole line as Linux writes it (procfs reads every field).
		stat := strconv.Itoa(pid) + " (" + comm + ") S " + strconv.Itoa(ppid) +
			" 100 100 0 -1 4194560 1000 0 0 0 10 5 0 0 20 0 1 0 12345 200000000 3000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(cmdline), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	add(100, 1, "unshare", "unshare\x00--mount\x00php-fpm8.2\x00")
	add(101, 100, "php-fpm8.2", "php-fpm: master process (/x/php-fpm.conf)\x00")
	add(102, 101, "php-fpm8.2", "php-fpm: pool wp_a                                \x00")
	add(103, 101, "php-fpm8.2", "php-fpm: pool wp_a\x00")
	add(104, 101, "php-fpm8.2", "php-fpm: pool wp_b\x00")
	add(105, 104, "sh (evil) x", "php-fpm: pool wp_c\x00")
	add(200, 1, "php-fpm8.2", "php-fpm: master process (/y/php-fpm.conf)\x00")
	add(201, 200, "php-fpm8.2", "php-fpm: pool wp_a\x00")
	got := poolWorkers(proc, 100)
	want := map[string]int{"wp_a": 2, "wp_b": 1}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("got %v, want %v", got, want)
		}
	}
}
