// This file only keeps the go command out of web/ (node_modules may hold
// .go files of npm packages): web/ is the portal's Node.js source, built
// into ../internal/portal/dist, which the Go module embeds.
module aipress.invalid/web-not-go
