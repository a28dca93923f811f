package serve

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHealth(t *testing.T) {
	h := &Health{}
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	get := func(path string) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tt := range []struct {
		ready      bool
		path       string
		wantStatus int
	}{
		{false, "/livez", 200},
		{false, "/readyz", 503},
		{false, "/other", 404},
		{true, "/livez", 200},
		{true, "/readyz", 200},
	} {
		if tt.ready {
			h.SetReady()
		}
		if got := get(tt.path); got != tt.wantStatus {
			t.Errorf("ready=%v GET %s = %d, want %d", tt.ready, tt.path, got, tt.wantStatus)
		}
	}
}
