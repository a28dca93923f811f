package portal

import "regexp"

var (
	// script src and modulepreload href in index.html.
	scriptRe = regexp.MustCompile(`<(?:script[^>]*\ssrc|link[^>]*rel="modulepreload"[^>]*\shref)="([^"]+\.js)"`)
	// static imports in a built module: import"./a.js", from"./a.js"
	// (dynamic import("./a.js") is not part of the first load).
	importRe = regexp.MustCompile(`(?:\bfrom\s*|\bimport\s*)["'](\.\.?/[^"']+\.js)["']`)
)

func scriptSources(html string) []string {
	var out []string
	for _, m := range scriptRe.FindAllStringSubmatch(html, -1) {
		out = append(out, m[1])
	}
	return out
}

func staticImports(js string) []string {
	var out []string
	for _, m := range importRe.FindAllStringSubmatch(js, -1) {
		out = append(out, m[1])
	}
	return out
}
