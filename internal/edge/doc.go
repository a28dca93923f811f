// Package edge is the HTTP front door of an AIPress shard: it maps the Host
// header to a site, serves the site's static files itself and passes dynamic
// requests to the site's php-fpm pool over FastCGI.
package edge
