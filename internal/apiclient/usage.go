package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/aipress/aipress/internal/api"
)

// UsageQuery selects usage records (GET /v1/usage); empty fields are the
// server's defaults.
type UsageQuery struct {
	Period, Month, From, To, Site, Org, After string
	Limit                                     int
}

func (q UsageQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"period": q.Period, "month": q.Month, "from": q.From, "to": q.To,
		"site": q.Site, "org": q.Org, "after": q.After} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// ListUsage returns a page of usage records.
func (c *Client) ListUsage(ctx context.Context, q UsageQuery) (*api.UsageList, error) {
	var out api.UsageList
	if err := c.do(ctx, http.MethodGet, withQuery("/v1/usage", q.values()), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Cost returns the cost report of month ("": the current one), only of
// org when not empty.
func (c *Client) Cost(ctx context.Context, month, org string) (*api.CostReport, error) {
	v := url.Values{}
	if month != "" {
		v.Set("month", month)
	}
	if org != "" {
		v.Set("org", org)
	}
	var out api.CostReport
	if err := c.do(ctx, http.MethodGet, withQuery("/v1/cost", v), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
