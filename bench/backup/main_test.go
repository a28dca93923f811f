package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPlanUploads(t *testing.T) {
	const total = 50 << 20
	plan := planUploads(total, 10)
	var sum int64
	dups := 0
	for i, u := range plan {
		sum += u.Size
		if u.CopyOf >= 0 {
			dups++
			if u.CopyOf >= i || plan[u.CopyOf].CopyOf >= 0 || plan[u.CopyOf].Size != u.Size {
				t.Fatalf("upload %d copies %d badly: %+v", i, u.CopyOf, u)
			}
		}
	}
	if sum < total || sum > total+3<<20 {
		t.Fatalf("planned %d bytes for %d", sum, total)
	}
	if dups == 0 || dups > len(plan)/9 {
		t.Fatalf("%d copies among %d files", dups, len(plan))
	}
	// Deterministic.
	again := planUploads(total, 10)
	for i := range plan {
		if plan[i] != again[i] {
			t.Fatal("plans differ between runs")
		}
	}
	if p := planUploads(total, 0); func() bool {
		for _, u := range p {
			if u.CopyOf >= 0 {
				return true
			}
		}
		return false
	}() {
		t.Fatal("copies planned with dupEvery 0")
	}
}

func TestWriteUploadsCopies(t *testing.T) {
	dir := t.TempDir()
	plan := []upload{{Path: "a/x.jpg", Size: 1000, Seed: 1, CopyOf: -1}, {Path: "a/y.jpg", Size: 1000, Seed: 2, CopyOf: -1}, {Path: "b/z.jpg", Size: 1000, CopyOf: 0}}
	if err := writeUploads(dir, plan); err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	x, y, z := read("a/x.jpg"), read("a/y.jpg"), read("b/z.jpg")
	if len(x) != 1000 || !bytes.Equal(x, z) || bytes.Equal(x, y) {
		t.Fatal("copies are not copies, or distinct files are equal")
	}
}

func TestSQL(t *testing.T) {
	q := postsSQL(0, 3)
	if strings.Count(q, "'publish'") != 3 || !strings.Contains(q, "(1000, 1,") || !strings.Contains(q, "(1002, 1,") {
		t.Fatalf("posts SQL: %.300s", q)
	}
	if postsSQL(5, 6) != postsSQL(5, 6) {
		t.Fatal("posts are not deterministic")
	}
	m := postmetaSQL(0, 2)
	if strings.Count(m, "_bench_layout") != 2 || !strings.Contains(m, `a:2:{s:5:"width";i:600;`) {
		t.Fatalf("postmeta SQL: %s", m)
	}
	if got := sqlQuote(`it's a \ test`); got != `'it''s a \\ test'` {
		t.Fatalf("quote: %s", got)
	}
}

func TestReport(t *testing.T) {
	r := &Report{Posts: 10, DumpBytes: 1 << 20, UploadBytes: 2 << 20,
		Restic:  &Result{First: 2 * time.Second, Second: time.Second, Restore: 3 * time.Second, SizeAfterFirst: 10 << 20, SizeAfterSecond: 10 << 20},
		AIPress: &Result{First: time.Second, Second: 2 * time.Second, Restore: time.Second, SizeAfterFirst: 9 << 20, SizeAfterSecond: 9 << 20}}
	var b strings.Builder
	r.Table().Print(&b)
	if !strings.Contains(b.String(), "second backup (unchanged)") || !strings.Contains(b.String(), "9.0 MiB") {
		t.Fatalf("table:\n%s", b.String())
	}
	v := strings.Join(r.Verdict(), "\n")
	if !strings.Contains(v, "second backup:") || !strings.Contains(v, "MISSED") || strings.Count(v, ": met") != 3 {
		t.Fatalf("verdict:\n%s", v)
	}
	// A few bytes more than restic count as equal, and say so.
	r.AIPress.SizeAfterSecond = r.Restic.SizeAfterSecond + 1000
	v = strings.Join(r.Verdict(), "\n")
	if !strings.Contains(v, "met (within 1%)") || !strings.Contains(v, "within 1% of restic's count as equal") {
		t.Fatalf("verdict, a few bytes larger:\n%s", v)
	}
	r.AIPress.SizeAfterSecond = r.Restic.SizeAfterSecond * 102 / 100
	if v := strings.Join(r.Verdict(), "\n"); !strings.Contains(v, "repository size:") || strings.Count(v, "MISSED") != 2 {
		t.Fatalf("verdict, 2%% larger:\n%s", v)
	}
	r.Restic = nil
	if v := strings.Join(r.Verdict(), "\n"); !strings.Contains(v, "not compared") {
		t.Fatalf("verdict without restic:\n%s", v)
	}
}
