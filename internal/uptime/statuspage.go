package uptime

import (
	"bytes"
	"fmt"
	"html/template"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// MonthFigure is one month's availability on a status page.
type MonthFigure struct {
	Month   string
	Percent float64
}

// SitePage is what a site's public status page shows: only that site's
// own state, availability and incidents (their times and causes).
type SitePage struct {
	Site string
	Now  time.Time
	// Open is the site's open incident (nil: up).
	Open      *store.Incident
	Months    []MonthFigure
	Incidents []store.Incident // recent, newest first
}

// PlatformPage is the platform's public status page: counts only, no
// site's name or figures.
type PlatformPage struct {
	Now              time.Time
	Shards, ShardsUp int
	Sites, SitesDown int
	IncidentsLastDay int
	Months           []MonthFigure // over all sites
}

var pageFuncs = template.FuncMap{
	"pct":  func(f float64) string { return fmt.Sprintf("%.3f %%", f) },
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"lasted": func(in store.Incident, now time.Time) string {
		return in.Duration(now).Round(time.Second).String()
	},
}

var pages = template.Must(template.New("").Funcs(pageFuncs).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="60"><title>{{.}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#222}
.up{color:#176d2c}.down{color:#b3261e}table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd}</style>
</head><body>{{end}}
{{define "months"}}{{if .}}<h2>Availability</h2><table><tr><th>Month</th><th>Availability</th></tr>
{{range .}}<tr><td>{{.Month}}</td><td>{{pct .Percent}}</td></tr>{{end}}</table>{{end}}{{end}}
{{define "site"}}{{template "head" (printf "Status of %s" .Site)}}
<h1>{{.Site}}</h1>
{{if .Open}}<p class="down" id="state">Down since {{when .Open.Started}} ({{.Open.Cause}}).</p>
{{else}}<p class="up" id="state">Up.</p>{{end}}
{{template "months" .Months}}
<h2>Recent incidents</h2>
{{$now := .Now}}{{if .Incidents}}<table><tr><th>Started</th><th>Lasted</th><th>Cause</th></tr>
{{range .Incidents}}<tr><td>{{when .Started}}</td><td>{{if .Ended}}{{lasted . $now}}{{else}}ongoing{{end}}</td><td>{{.Cause}}</td></tr>{{end}}</table>
{{else}}<p>None in the last 90 days.</p>{{end}}
<p><small>Checked every minute from the platform's edge. As of {{when .Now}}.</small></p></body></html>{{end}}
{{define "platform"}}{{template "head" "Platform status"}}
<h1>Platform status</h1>
{{if and (eq .ShardsUp .Shards) (eq .SitesDown 0)}}<p class="up" id="state">All systems operational.</p>
{{else}}<p class="down" id="state">Some sites are affected.</p>{{end}}
<table><tr><td>Control plane</td><td class="up">operational</td></tr>
<tr><td>Shards healthy</td><td>{{.ShardsUp}} of {{.Shards}}</td></tr>
<tr><td>Sites down now</td><td>{{.SitesDown}} of {{.Sites}}</td></tr>
<tr><td>Incidents in the last 24 hours</td><td>{{.IncidentsLastDay}}</td></tr></table>
{{template "months" .Months}}
<p><small>As of {{when .Now}}.</small></p></body></html>{{end}}
`))

// RenderSite renders a site's status page.
func RenderSite(p SitePage) ([]byte, error) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, "site", p); err != nil {
		return nil, fmt.Errorf("status page of %q: %w", p.Site, err)
	}
	return b.Bytes(), nil
}

// RenderPlatform renders the platform's status page.
func RenderPlatform(p PlatformPage) ([]byte, error) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, "platform", p); err != nil {
		return nil, fmt.Errorf("platform status page: %w", err)
	}
	return b.Bytes(), nil
}
