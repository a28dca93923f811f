package edgenode

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/uptime"
)

type fakePeers struct {
	whoErr, peersErr error
	edges            []string
	whoCalls         int
}

func (f *fakePeers) WhoAmI(context.Context) (*apiclient.WhoAmI, error) {
	f.whoCalls++
	if f.whoErr != nil {
		return nil, f.whoErr
	}
	return &apiclient.WhoAmI{ID: "tok-e1"}, nil
}

func (f *fakePeers) EdgePeers(context.Context) ([]string, error) { return f.edges, f.peersErr }

// TestProbePeers: nothing until the edge knows its name and the list; the
// name is asked once; a failed fetch empties the list (the edge probes
// every site) and the next one fills it again. Wired into a prober, the
// edge probes only the sites Assign gives it.
func TestProbePeers(t *testing.T) {
	src := &fakePeers{whoErr: errors.New("control plane away")}
	p := &probePeers{}
	if err := p.refresh(t.Context(), src); err == nil {
		t.Fatal("no error without a name")
	}
	if self, edges := p.Get(); self != "" || edges != nil {
		t.Errorf("before the name: %q %v", self, edges)
	}
	src.whoErr, src.edges = nil, []string{"tok-e1", "tok-e2"}
	if err := p.refresh(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	if self, edges := p.Get(); self != "tok-e1" || !slices.Equal(edges, src.edges) {
		t.Errorf("got %q %v", self, edges)
	}
	src.peersErr = errors.New("503")
	if err := p.refresh(t.Context(), src); err == nil {
		t.Fatal("no error from a failed fetch")
	}
	if self, edges := p.Get(); self != "tok-e1" || edges != nil {
		t.Errorf("after a failed fetch: %q %v, want the name and no list", self, edges)
	}
	src.peersErr = nil
	if err := p.refresh(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	if src.whoCalls != 2 {
		t.Errorf("WhoAmI asked %d times, want 2 (once failed, once answered)", src.whoCalls)
	}

	var targets []uptime.Target
	for _, s := range []string{"a.test", "b.test", "c.test", "d.test", "e.test", "f.test", "g.test", "h.test"} {
		targets = append(targets, uptime.Target{Site: s, Host: s})
	}
	var probed []string
	pr := uptime.New(uptime.Config{Interval: 1, Peers: p.Get, Targets: func() []uptime.Target { return targets },
		Handler: handlerFunc(func(host string) { probed = append(probed, host) }),
		Send:    func(context.Context, []uptime.Result) error { return nil }, Parallel: 1})
	if err := pr.Round(t.Context()); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, tg := range targets {
		if uptime.Assign(tg.Site, src.edges) == "tok-e1" {
			want = append(want, tg.Host)
		}
	}
	slices.Sort(probed)
	if len(want) == 0 || len(want) == len(targets) || !slices.Equal(probed, want) {
		t.Errorf("probed %v, want %v (of %d)", probed, want, len(targets))
	}
}

// handlerFunc answers every probe with a WordPress page and tells f the
// host asked.
func handlerFunc(f func(host string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f(r.Host)
		_, _ = w.Write([]byte(`<link href="/wp-content/x.css">`))
	})
}
