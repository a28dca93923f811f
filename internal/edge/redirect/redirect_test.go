package redirect

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aipress/aipress/internal/edge"
)

func TestHTTPS(t *testing.T) {
	next := func(w http.ResponseWriter, r *http.Request, rt *edge.Route) error {
		w.WriteHeader(299)
		return nil
	}
	on := &edge.Route{Site: "a", Options: edge.RouteOptions{HTTPSRedirect: true}}
	off := &edge.Route{Site: "b"}
	tests := []struct {
		name   string
		port   int
		rt     *edge.Route
		host   string
		target string
		tls    bool
		code   int
		loc    string
	}{
		{"redirect", 8443, on, "blog.localhost:8080", "/a/b?c=d", false, 308, "https://blog.localhost:8443/a/b?c=d"},
		{"port 443", 443, on, "blog.example.com", "/", false, 308, "https://blog.example.com/"},
		{"already https", 8443, on, "blog.localhost", "/", true, 299, ""},
		{"spec off", 8443, off, "blog.localhost", "/", false, 299, ""},
		{"no https listener", 0, on, "blog.localhost", "/", false, 299, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := HTTPS(tt.port)(next)
			r := httptest.NewRequest("POST", tt.target, nil)
			r.Host = tt.host
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			w := httptest.NewRecorder()
			if err := h(w, r, tt.rt); err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.code || w.Header().Get("Location") != tt.loc {
				t.Errorf("got %d %q, want %d %q", w.Code, w.Header().Get("Location"), tt.code, tt.loc)
			}
		})
	}
}
