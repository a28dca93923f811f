package sqlite

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Writes committed together keep their own outcomes: a failing or
// panicking write is rolled back alone, the others are written.
func TestGroupCommitOutcomes(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 60
	for i := range n {
		st := &site.Site{Metadata: site.Metadata{Name: fmt.Sprintf("s%02d.test", i), UID: fmt.Sprintf("uid-%02d", i), CreatedAt: time.Now()},
			Spec: site.Spec{Domain: fmt.Sprintf("s%02d.test", i)}}
		if err := s.CreateSite(t.Context(), st); err != nil {
			t.Fatal(err)
		}
	}
	refused := errors.New("refused")
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make([]error, n)
		panics := make([]any, n)
		for i := range n {
			wg.Go(func() {
				defer func() { panics[i] = recover() }()
				_, errs[i] = s.UpdateSite(t.Context(), fmt.Sprintf("s%02d.test", i), func(x *site.Site) error {
					x.Spec.Title = fmt.Sprintf("round %d", round)
					switch i % 3 {
					case 1:
						return refused
					case 2:
						if i%6 == 2 {
							panic("mutate panicked")
						}
					}
					return nil
				})
			})
		}
		wg.Wait()
		for i := range n {
			got, err := s.GetSite(t.Context(), fmt.Sprintf("s%02d.test", i))
			if err != nil {
				t.Fatal(err)
			}
			written := got.Spec.Title == fmt.Sprintf("round %d", round)
			switch {
			case i%3 == 1:
				if errs[i] != refused || written { //nolint:errorlint // as is
					t.Errorf("round %d, s%02d: err %v, written %v; want the mutate error, nothing written", round, i, errs[i], written)
				}
			case i%6 == 2:
				if panics[i] != "mutate panicked" || written {
					t.Errorf("round %d, s%02d: panic %v, written %v; want the panic again, nothing written", round, i, panics[i], written)
				}
			default:
				if errs[i] != nil || panics[i] != nil || !written {
					t.Errorf("round %d, s%02d: err %v, panic %v, written %v; want written", round, i, errs[i], panics[i], written)
				}
			}
		}
	}
	// Every written site took its own revision.
	cl, err := s.Changes(t.Context(), 0, store.ChangeOptions{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, x := range cl.Sites {
		if seen[x.Metadata.ResourceVersion] {
			t.Errorf("revision %d twice", x.Metadata.ResourceVersion)
		}
		seen[x.Metadata.ResourceVersion] = true
	}
}
