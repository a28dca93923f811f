package platform

import "testing"

// TestHTTPSURLFunc: the sites' HTTPS URL names the edges' HTTPS port
// unless it is 443, and there is none without an HTTPS listener.
func TestHTTPSURLFunc(t *testing.T) {
	tests := []struct {
		port int
		want string // "": no function
	}{
		{0, ""},
		{-1, ""},
		{443, "https://blog.localhost"},
		{8443, "https://blog.localhost:8443"},
	}
	for _, tt := range tests {
		f := httpsURLFunc(tt.port)
		switch {
		case tt.want == "" && f != nil:
			t.Errorf("port %d: an HTTPS URL %q, want none", tt.port, f("blog.localhost"))
		case tt.want != "" && f == nil:
			t.Errorf("port %d: no HTTPS URL, want %q", tt.port, tt.want)
		case f != nil && f("blog.localhost") != tt.want:
			t.Errorf("port %d: %q, want %q", tt.port, f("blog.localhost"), tt.want)
		}
	}
}
