// Package monitoring holds AIPress's Prometheus alert rules (rules/) and
// generates its Grafana dashboards (dashboards/) as code.
//
// The rules are checked with `promtool check rules` and unit-tested with
// `promtool test rules` by this package's tests (Debian's prometheus
// package ships promtool; make deps installs it). The dashboards are built
// with grafana-foundation-sdk; `go test ./deploy/monitoring -run
// TestDashboards -update` rewrites the committed JSON from the code.
package monitoring
