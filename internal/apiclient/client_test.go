package apiclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
		}
		switch r.URL.Path {
		case "/v1/sites/x.com":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"site \"x.com\" not found"}}`))
		default:
			http.Error(w, "bad gateway", http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	c := New(srv.URL+"/", "tok")
	_, err := c.GetSite(context.Background(), "x.com")
	var e *Error
	if !errors.As(err, &e) || e.Status != 404 || e.Code != "not_found" || err.Error() != `site "x.com" not found` || !IsNotFound(err) {
		t.Fatalf("err = %#v", err)
	}
	_, err = c.WhoAmI(context.Background())
	if !errors.As(err, &e) || e.Status != 502 || e.Code != "http_502" || IsNotFound(err) {
		t.Fatalf("err = %#v", err)
	}
}

func TestPurgeSite(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.URL.Path != "/v1/sites/blog.localhost/purge" || string(b) != `{"tag":"home"}` {
			t.Errorf("%s %s %s", r.Method, r.URL.Path, b)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"purged": 3}`))
	}))
	defer srv.Close()
	got, err := New(srv.URL, "tok").PurgeSite(context.Background(), "blog.localhost", PurgeRequest{Tag: "home"})
	if err != nil || got.Purged != 3 {
		t.Fatalf("PurgeSite = %+v, %v", got, err)
	}
}
