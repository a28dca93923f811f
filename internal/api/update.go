package api

import (
	"net/http"

	"github.com/aipress/aipress/internal/site"
)

// UpdateSiteRequest is the body of PATCH /v1/sites/{name}: every field is
// optional, and only the fields present change.
type UpdateSiteRequest struct {
	Title         *string      `json:"title,omitempty"`
	HTTPSRedirect *bool        `json:"https_redirect,omitempty"`
	Cache         *UpdateCache `json:"cache,omitempty"`
	WAF           *UpdateWAF   `json:"waf,omitempty"`
}

// UpdateCache changes the page-cache policy.
type UpdateCache struct {
	TTLSeconds *int `json:"ttl_seconds,omitempty"`
}

// UpdateWAF changes the WAF policy.
type UpdateWAF struct {
	Mode          *string `json:"mode,omitempty"`
	ParanoiaLevel *int    `json:"paranoia_level,omitempty"`
}

// MaxCacheTTLSeconds bounds cache.ttl_seconds (one day).
const MaxCacheTTLSeconds = 86400

func (req *UpdateSiteRequest) validate() error {
	if req.Title != nil && (*req.Title == "" || len(*req.Title) > 200) {
		return badRequest("title must be 1 to 200 characters")
	}
	if req.Title != nil && !plainText(*req.Title) {
		return badRequest("title must not contain control characters (line breaks, tabs, NUL …)")
	}
	if req.Cache != nil && req.Cache.TTLSeconds != nil {
		if ttl := *req.Cache.TTLSeconds; ttl < 0 || ttl > MaxCacheTTLSeconds {
			return badRequest("cache.ttl_seconds must be between 0 and %d", MaxCacheTTLSeconds)
		}
	}
	if req.WAF != nil {
		if m := req.WAF.Mode; m != nil && *m != site.WAFOff && *m != site.WAFDetect && *m != site.WAFBlock {
			return badRequest("waf.mode must be off, detect or block")
		}
		if p := req.WAF.ParanoiaLevel; p != nil && (*p < 1 || *p > 4) {
			return badRequest("waf.paranoia_level must be between 1 and 4")
		}
	}
	return nil
}

func (s *server) patchSite(c *call) (response, error) {
	var req UpdateSiteRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if err := req.validate(); err != nil {
		return response{}, err
	}
	return s.update(c, http.StatusOK, func(st *site.Site) error {
		if st.Metadata.DeletionRequested != nil {
			return errorf(http.StatusConflict, CodeConflict, "site %q is being deleted", st.Metadata.Name)
		}
		if req.Title != nil {
			st.Spec.Title = *req.Title
		}
		if req.HTTPSRedirect != nil {
			st.Spec.HTTPSRedirect = *req.HTTPSRedirect
		}
		if req.Cache != nil && req.Cache.TTLSeconds != nil {
			st.Spec.Cache.TTLSeconds = *req.Cache.TTLSeconds
		}
		if req.WAF != nil {
			if req.WAF.Mode != nil {
				st.Spec.WAF.Mode = *req.WAF.Mode
			}
			if req.WAF.ParanoiaLevel != nil {
				st.Spec.WAF.ParanoiaLevel = *req.WAF.ParanoiaLevel
			}
		}
		return nil
	})
}
