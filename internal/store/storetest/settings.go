package storetest

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/aipress/aipress/internal/store"
)

// testSettings: a setting is created at version 0 only once, written only
// at its current version, read back as written, refused when malformed,
// survives reopening, and takes no revision.
func testSettings(t *testing.T, h *harness) {
	dir := t.TempDir()
	s := h.open(t, dir)
	ctx := t.Context()
	if _, err := s.GetSetting(ctx, "mesh.ca"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSetting(missing) = %v, want ErrNotFound", err)
	}
	rev := func() int64 { return revision(t, s) }
	before := rev()
	put := func(value string, version int64, want error) *store.Setting {
		t.Helper()
		got, err := s.PutSetting(ctx, "mesh.ca", []byte(value), version)
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Fatalf("PutSetting(%q, %d) = %v, want %v", value, version, err, want)
		}
		return got
	}
	if got := put("one", 0, nil); got.Version != 1 || string(got.Value) != "one" {
		t.Errorf("first put = %+v, want version 1", got)
	}
	put("again", 0, store.ErrConflict) // created already
	put("stale", 2, store.ErrConflict) // no such version yet
	if got := put("two", 1, nil); got.Version != 2 {
		t.Errorf("second put = %+v, want version 2", got)
	}
	put("lost", 1, store.ErrConflict) // a writer that read version 1 loses
	got, err := s.GetSetting(ctx, "mesh.ca")
	if err != nil || string(got.Value) != "two" || got.Version != 2 || got.Key != "mesh.ca" {
		t.Fatalf("GetSetting = %+v, %v; want two at version 2", got, err)
	}
	// Binary values and the empty value round-trip.
	bin := []byte{0, 1, 2, 0xff}
	if _, err := s.PutSetting(ctx, "bin", bin, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSetting(ctx, "bin"); err != nil || !bytes.Equal(got.Value, bin) {
		t.Errorf("binary value = %v, %v", got, err)
	}
	if _, err := s.PutSetting(ctx, "empty", nil, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSetting(ctx, "empty"); err != nil || got.Value == nil || len(got.Value) != 0 {
		t.Errorf("empty value = %+v, %v; want a non-nil empty value", got, err)
	}
	for _, tc := range []struct {
		key     string
		value   []byte
		version int64
	}{
		{"", nil, 0},
		{"Upper", nil, 0},
		{"a b", nil, 0},
		{strings.Repeat("k", 129), nil, 0},
		{"big", make([]byte, store.MaxSettingBytes+1), 0},
		{"neg", nil, -1},
	} {
		if _, err := s.PutSetting(ctx, tc.key, tc.value, tc.version); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PutSetting(%.20q, %d bytes, %d) = %v, want ErrInvalid", tc.key, len(tc.value), tc.version, err)
		}
	}
	// ListSettings by prefix, in key order; DeleteSetting with
	// compare-and-set.
	for _, k := range []string{"list.b", "list.a-1", "list.a", "listx", "lis"} {
		if _, err := s.PutSetting(ctx, k, []byte(k), 0); err != nil {
			t.Fatal(err)
		}
	}
	listKeys := func(prefix string) []string {
		t.Helper()
		l, err := s.ListSettings(ctx, prefix)
		if err != nil {
			t.Fatalf("ListSettings(%q): %v", prefix, err)
		}
		keys := []string{}
		for _, st := range l {
			if string(st.Value) != st.Key || st.Version != 1 {
				t.Errorf("ListSettings(%q): %+v, want its key as value at version 1", prefix, st)
			}
			keys = append(keys, st.Key)
		}
		return keys
	}
	if got := listKeys("list."); strings.Join(got, " ") != "list.a list.a-1 list.b" {
		t.Errorf("ListSettings(list.) = %q", got)
	}
	if got := listKeys("none."); len(got) != 0 {
		t.Errorf("ListSettings(none.) = %q, want none", got)
	}
	if err := s.DeleteSetting(ctx, "list.a", 2); !errors.Is(err, store.ErrConflict) {
		t.Errorf("DeleteSetting at a wrong version = %v, want ErrConflict", err)
	}
	if err := s.DeleteSetting(ctx, "list.a", 1); err != nil {
		t.Errorf("DeleteSetting: %v", err)
	}
	if err := s.DeleteSetting(ctx, "list.a", 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteSetting again = %v, want ErrNotFound", err)
	}
	if got := listKeys("list."); strings.Join(got, " ") != "list.a-1 list.b" {
		t.Errorf("after delete, ListSettings(list.) = %q", got)
	}
	if after := rev(); after != before {
		t.Errorf("settings took revisions: %d → %d", before, after)
	}

	// Concurrent compare-and-set: of writers that read the same version,
	// exactly one wins.
	const n = 8
	var wg sync.WaitGroup
	wins := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.PutSetting(ctx, "mesh.ca", []byte{byte(i)}, 2); err == nil {
				wins <- i
			} else if !errors.Is(err, store.ErrConflict) {
				t.Errorf("concurrent put: %v", err)
			}
		}()
	}
	wg.Wait()
	close(wins)
	var won []int
	for i := range wins {
		won = append(won, i)
	}
	if len(won) != 1 {
		t.Fatalf("%d concurrent writers of version 2 won, want 1", len(won))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = h.openAt(t, dir)
	if got, err := s.GetSetting(ctx, "mesh.ca"); err != nil || got.Version != 3 || !bytes.Equal(got.Value, []byte{byte(won[0])}) {
		t.Errorf("after reopening: %+v, %v; want the winner's value at version 3", got, err)
	}
}
