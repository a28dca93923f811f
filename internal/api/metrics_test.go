package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestMetricsRoute(t *testing.T) {
	e := newEnv(t)
	// Without a metrics handler: 404 for an authenticated caller.
	if code, _, _ := e.do(t, "GET", "/metrics", viewerSecret, nil); code != 404 {
		t.Errorf("no handler: %d, want 404", code)
	}
	e.handler = New(Config{Store: e.store, Placer: StaticPlacer("local"), Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") != "" {
			t.Error("Accept-Encoding passed to the metrics handler")
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "up 1\n")
	})})
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong", 401}, {viewerSecret, 200}, {adminSecret, 200}} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("token %q: %d, want %d", tc.token, rec.Code, tc.want)
		}
		if tc.want == 200 && (rec.Body.String() != "up 1\n" || rec.Header().Get("Content-Type") != "text/plain; version=0.0.4") {
			t.Errorf("body %q type %q", rec.Body.String(), rec.Header().Get("Content-Type"))
		}
	}
}
