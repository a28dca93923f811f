package shardagent

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestAgentHealth(t *testing.T) {
	h := &agentHealth{}
	srv := httptest.NewServer(h.handler())
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
	tests := []struct {
		ready      bool
		path       string
		wantStatus int
	}{
		{false, "/livez", 200},
		{false, "/readyz", 503},
		{true, "/livez", 200},
		{true, "/readyz", 200},
	}
	for _, tt := range tests {
		h.ready.Store(tt.ready)
		if got := get(tt.path); got != tt.wantStatus {
			t.Errorf("ready=%v GET %s = %d, want %d", tt.ready, tt.path, got, tt.wantStatus)
		}
	}
}
