package egress_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/aipress/aipress/internal/egress"
)

func TestCheckAddr(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"93.184.216.34", true}, {"2606:2800:220:1:248:1893:25c8:1946", true}, {"1.1.1.1", true},
		{"127.0.0.1", false}, {"127.5.6.7", false}, {"::1", false}, {"10.1.2.3", false}, {"172.16.0.1", false},
		{"192.168.1.1", false}, {"169.254.169.254", false}, {"fe80::1", false}, {"fd00::1", false},
		{"0.0.0.0", false}, {"::", false}, {"224.0.0.1", false}, {"ff02::1", false}, {"100.64.0.1", false},
		{"::ffff:127.0.0.1", false}, {"::ffff:169.254.169.254", false}, {"64:ff9b::a9fe:a9fe", false},
		{"255.255.255.255", false},
	} {
		err := egress.CheckAddr(netip.MustParseAddr(tt.addr))
		if (err == nil) != tt.ok {
			t.Errorf("CheckAddr(%s) = %v, want ok %v", tt.addr, err, tt.ok)
		}
		if err != nil && !errors.Is(err, egress.ErrForbidden) {
			t.Errorf("CheckAddr(%s) = %v, not ErrForbidden", tt.addr, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, tt := range []struct {
		url            string
		guarded, allow bool
	}{
		{"https://example.com/p.zip", true, true},
		{"http://example.com/p.zip", false, true},
		{"http://127.0.0.1:8080/p.zip", false, true},
		{"https://127.0.0.1/p.zip", false, true},
		{"https://[::1]/p.zip", false, true},
		{"https://169.254.169.254/latest/meta-data", false, true},
		{"https://10.0.0.1/", false, true},
		{"https://localhost/", false, true},
		{"https://a.localhost/", false, true},
		{"ftp://example.com/p.zip", false, false},
		{"file:///etc/passwd", false, false},
		{"https://user:pw@example.com/p.zip", false, false},
		{"https:///p.zip", false, false},
	} {
		if err := egress.CheckURL(tt.url, false); (err == nil) != tt.guarded {
			t.Errorf("CheckURL(%s, guarded) = %v, want ok %v", tt.url, err, tt.guarded)
		}
		if err := egress.CheckURL(tt.url, true); (err == nil) != tt.allow {
			t.Errorf("CheckURL(%s, allow private) = %v, want ok %v", tt.url, err, tt.allow)
		}
	}
}

// counter is a loopback server that counts its requests.
func counter(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestClientDialsOnlyPublic: the guarded client refuses what a name
// resolves to (localhost → 127.0.0.1), not only address literals.
func TestClientDialsOnlyPublic(t *testing.T) {
	srv, n := counter(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) })
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	for _, u := range []string{srv.URL, byName} {
		_, err := egress.Client(false, 0).Get(u)
		if !errors.Is(err, egress.ErrForbidden) {
			t.Errorf("guarded GET %s: %v, want ErrForbidden", u, err)
		}
	}
	if n.Load() != 0 {
		t.Errorf("the loopback server got %d requests from the guarded client", n.Load())
	}
	resp, err := egress.Client(true, 0).Get(byName)
	if err != nil {
		t.Fatalf("allowed GET: %v", err)
	}
	resp.Body.Close()
	if n.Load() != 1 {
		t.Errorf("allowed GET: %d requests, want 1", n.Load())
	}
}

// TestRedirectsChecked: every hop is checked, not only the first URL.
func TestRedirectsChecked(t *testing.T) {
	inner, hits := counter(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("metadata")) })
	for _, target := range []string{
		"http://169.254.169.254/latest/meta-data/", // plain http, link-local
		"https://169.254.169.254/latest/meta-data/",
		strings.Replace(inner.URL, "http:", "https:", 1), // loopback literal
		inner.URL, // plain http
	} {
		outer, _ := counter(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target, http.StatusFound) })
		// The first hop is allowed through (a stand-in for a public
		// server); the redirect is checked with the guarded policy.
		c := &http.Client{Transport: egress.Transport(true), CheckRedirect: egress.CheckRedirect(false)}
		resp, err := c.Get(outer.URL)
		if err == nil {
			resp.Body.Close()
			t.Errorf("redirect to %s followed", target)
		} else if !errors.Is(err, egress.ErrForbidden) {
			t.Errorf("redirect to %s: %v, want ErrForbidden", target, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the redirect target got %d requests", hits.Load())
	}
}

// TestGitTransportGuarded: go-git's http transport is guarded unless the
// call's context allows private networks.
func TestGitTransportGuarded(t *testing.T) {
	srv, n := counter(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	list := func(ctx context.Context) error {
		rem := git.NewRemote(memory.NewStorage(), &gitconfig.RemoteConfig{Name: "origin", URLs: []string{srv.URL + "/repo.git"}})
		_, err := rem.ListContext(ctx, &git.ListOptions{})
		return err
	}
	if err := list(context.Background()); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("guarded git listing: %v, want a refused loopback address", err)
	}
	if err := list(egress.WithAllowPrivate(context.Background(), false)); err == nil {
		t.Errorf("git listing with allow=false reached the server")
	}
	if n.Load() != 0 {
		t.Fatalf("the loopback server got %d requests from guarded git", n.Load())
	}
	_ = list(egress.WithAllowPrivate(context.Background(), true))
	if n.Load() == 0 {
		t.Errorf("allowed git listing did not reach the server")
	}
}
