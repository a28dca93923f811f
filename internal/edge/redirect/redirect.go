// Package redirect is the edge middleware that sends plain-HTTP visitors
// of sites whose spec asks for it (RouteOptions.HTTPSRedirect) to the same
// host and path over HTTPS, with 308 so that methods and bodies are kept.
package redirect

import (
	"net"
	"net/http"
	"strconv"

	"github.com/aipress/aipress/internal/edge"
)

// HTTPS returns the middleware for an HTTPS listener on port (443 gives
// URLs without a port). A port of zero or less means there is no HTTPS
// listener: the middleware then never redirects.
func HTTPS(port int) edge.Middleware {
	return func(next edge.RouteHandler) edge.RouteHandler {
		if port <= 0 {
			return next
		}
		return func(w http.ResponseWriter, r *http.Request, rt *edge.Route) error {
			if r.TLS != nil || !rt.Options.HTTPSRedirect {
				return next(w, r, rt)
			}
			http.Redirect(w, r, Target(r, port), http.StatusPermanentRedirect)
			return nil
		}
	}
}

// Target is the HTTPS URL for r on port: same host (the port the visitor
// sent is replaced), same path and query.
func Target(r *http.Request, port int) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if port != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(port))
	} else if len(host) > 0 && host[0] != '[' && net.ParseIP(host) != nil && net.ParseIP(host).To4() == nil {
		host = "[" + host + "]"
	}
	uri := r.URL.RequestURI()
	if r.RequestURI != "" && r.RequestURI[0] == '/' {
		uri = r.RequestURI
	}
	return "https://" + host + uri
}
