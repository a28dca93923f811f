package api

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/mail"
	"reflect"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/site"
)

// decodeBody runs the API's own body decoding on b.
func decodeBody(b []byte, v any) error {
	return decodeJSON(httptest.NewRequest("POST", "/v1/sites", bytes.NewReader(b)), v)
}

// checkRefusal: a refused body is a 400 with a message, never a 500.
func checkRefusal(t *testing.T, what string, err error) {
	t.Helper()
	he := asHTTPError(err)
	if he.Status != 400 || he.Msg == "" || (he.Code != CodeInvalidArgument && he.Code != CodeInvalidDomain) {
		t.Fatalf("%s refused with %d %s %q, want 400 invalid_argument/invalid_domain", what, he.Status, he.Code, he.Msg)
	}
}

// plainForTest is the property titles and labels must have: they reach
// the installer's environment (no NUL there) and terminals.
func plainForTest(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// FuzzCreateSiteRequest decodes and validates POST /v1/sites bodies
// (seeds: testdata/fuzz/FuzzCreateSiteRequest): a refused body is a 400; an
// accepted one holds only what the shards can use as it is — a normalised
// domain, a 1–200 character title without control characters, an admin
// user and a bare e-mail address that are safe in an environment variable,
// a known plan, valid labels and core version — and validating it again,
// or after a JSON round trip, changes nothing.
func FuzzCreateSiteRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		var req CreateSiteRequest
		err := decodeBody(body, &req)
		if err == nil {
			err = validateCreate(&req, plans.Defaults())
		}
		if err != nil {
			checkRefusal(t, "create body", err)
			return
		}
		if d, err := site.NormalizeDomain(req.Domain); err != nil || d != req.Domain {
			t.Fatalf("domain %q accepted, normalises to %q, %v", req.Domain, d, err)
		}
		if req.Title == "" || len(req.Title) > 200 || !plainForTest(req.Title) {
			t.Fatalf("title %q accepted", req.Title)
		}
		if !adminUserRE.MatchString(req.AdminUser) {
			t.Fatalf("admin user %q accepted", req.AdminUser)
		}
		addr, err := mail.ParseAddress(req.AdminEmail)
		if err != nil || addr.Address != req.AdminEmail || addr.Name != "" || !plainForTest(req.AdminEmail) {
			t.Fatalf("admin e-mail %q accepted (%+v, %v)", req.AdminEmail, addr, err)
		}
		if _, ok := plans.Defaults().Get(req.Plan); !ok {
			t.Fatalf("plan %q accepted", req.Plan)
		}
		if req.CoreVersion != "" && !coreVersionRE.MatchString(req.CoreVersion) {
			t.Fatalf("core version %q accepted", req.CoreVersion)
		}
		for k, v := range req.Labels {
			if !labelKeyRE.MatchString(k) || len(v) > 63 || !plainForTest(v) {
				t.Fatalf("label %q=%q accepted", k, v)
			}
		}
		again := req
		again.Labels = cloneLabels(req.Labels)
		if err := validateCreate(&again, plans.Defaults()); err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("validating %+v again: %+v, %v", req, again, err)
		}
		enc, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var back CreateSiteRequest
		if err := decodeBody(enc, &back); err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if err := validateCreate(&back, plans.Defaults()); err != nil || !reflect.DeepEqual(back, req) {
			t.Fatalf("round trip of %s: %+v, %v", enc, back, err)
		}
	})
}

func cloneLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// FuzzUpdateSiteRequest decodes and validates PATCH /v1/sites/{name}
// bodies (seeds: testdata/fuzz/FuzzUpdateSiteRequest): a refused body is a
// 400; every field an accepted body sets is within its bounds; a JSON round
// trip gives the same request.
func FuzzUpdateSiteRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		var req UpdateSiteRequest
		err := decodeBody(body, &req)
		if err == nil {
			err = req.validate()
		}
		if err != nil {
			checkRefusal(t, "update body", err)
			return
		}
		if req.Title != nil && (*req.Title == "" || len(*req.Title) > 200 || !plainForTest(*req.Title)) {
			t.Fatalf("title %q accepted", *req.Title)
		}
		if req.Cache != nil && req.Cache.TTLSeconds != nil && (*req.Cache.TTLSeconds < 0 || *req.Cache.TTLSeconds > MaxCacheTTLSeconds) {
			t.Fatalf("cache TTL %d accepted", *req.Cache.TTLSeconds)
		}
		if req.WAF != nil {
			if m := req.WAF.Mode; m != nil && *m != site.WAFOff && *m != site.WAFDetect && *m != site.WAFBlock {
				t.Fatalf("WAF mode %q accepted", *m)
			}
			if p := req.WAF.ParanoiaLevel; p != nil && (*p < 1 || *p > 4) {
				t.Fatalf("paranoia level %d accepted", *p)
			}
		}
		enc, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var back UpdateSiteRequest
		if err := decodeBody(enc, &back); err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if err := back.validate(); err != nil || !reflect.DeepEqual(back, req) {
			t.Fatalf("round trip of %s: %+v, %v", enc, back, err)
		}
	})
}
