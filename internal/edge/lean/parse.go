package lean

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"

	"golang.org/x/net/http/httpguts"
)

// parseResult is what parseRequest decided about the bytes at the front of
// a connection's buffer.
type parseResult uint8

const (
	needMore parseResult = iota // the header block is not complete yet
	take                        // a request the lean path serves
	handOff                     // anything else: net/http decides
)

// maxHeaderBlock bounds the request line and headers the lean path reads
// (less if the server's MaxHeaderBytes is smaller); a longer block is
// handed to net/http with the bytes read, which applies MaxHeaderBytes.
const maxHeaderBlock = 16 << 10

// maxFields bounds the header fields of a request the lean path takes
// (more: handed off).
const maxFields = 64

// field is a header field's canonical name and its value's offsets.
type field struct {
	key    string
	vs, ve int
}

// parsed is a request the lean path takes.
type parsed struct {
	method, target, host string
	url                  *url.URL
	header               http.Header
	close                bool // Connection: close
	n                    int  // bytes of the header block, final CRLFCRLF included
}

// parseRequest parses one request at the front of b, whose header block
// may not exceed max bytes. It takes only what it
// understands exactly: "GET" or "HEAD", an origin-form target of visible
// ASCII, "HTTP/1.1", lines ending in CRLF, header names that are tokens
// with values free of control characters, exactly one valid Host, and no
// Content-Length, Transfer-Encoding, Expect, Upgrade, obs-fold or
// Connection option other than close and keep-alive. Everything else —
// including what net/http would refuse — is handed off, and net/http
// answers it as it always did. The request it builds is the one net/http's
// server would build from the same bytes (same URL parsing, canonical
// header keys, Host moved out of Header, Pragma: no-cache implying
// Cache-Control, Connection: close recorded in Close).
func parseRequest(b []byte, max int) (parseResult, parsed) {
	var p parsed
	// The request line.
	eol := bytes.IndexByte(b, '\n')
	if eol < 0 {
		if len(b) >= max {
			return handOff, p
		}
		return needMore, p
	}
	if eol == 0 || b[eol-1] != '\r' {
		return handOff, p // bare LF, or an empty line before the request
	}
	line := b[:eol-1]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 {
		return handOff, p
	}
	switch string(line[:sp1]) {
	case http.MethodGet:
		p.method = http.MethodGet
	case http.MethodHead:
		p.method = http.MethodHead
	default:
		return handOff, p
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 || string(rest[sp2+1:]) != "HTTP/1.1" {
		return handOff, p
	}
	target := rest[:sp2]
	if target[0] != '/' {
		return handOff, p // absolute-form, "*", authority-form
	}
	for _, c := range target {
		if c <= 0x20 || c >= 0x7f {
			return handOff, p
		}
	}
	// The header block: validated here, kept as offsets; its strings are
	// made below from one copy of the block.
	ts := sp1 + 1
	te := ts + len(target)
	i := eol + 1
	var fields [maxFields]field
	nf := 0
	hs, he, hosts := 0, 0, 0
	for {
		if i >= len(b) {
			if len(b) >= max {
				return handOff, p
			}
			return needMore, p
		}
		if i > max {
			return handOff, p
		}
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			if len(b) >= max {
				return handOff, p
			}
			return needMore, p
		}
		if j == 0 || b[i+j-1] != '\r' {
			return handOff, p // bare LF
		}
		ls := i
		hl := b[i : i+j-1]
		i += j + 1
		if len(hl) == 0 {
			break // end of the header block
		}
		if hl[0] == ' ' || hl[0] == '\t' {
			return handOff, p // obs-fold
		}
		colon := bytes.IndexByte(hl, ':')
		if colon <= 0 {
			return handOff, p
		}
		name := hl[:colon]
		for _, c := range name {
			if !httpguts.IsTokenRune(rune(c)) {
				return handOff, p // includes a space before the colon
			}
		}
		vs, ve := ls+colon+1, ls+len(hl)
		for vs < ve && (b[vs] == ' ' || b[vs] == '\t') {
			vs++
		}
		for ve > vs && (b[ve-1] == ' ' || b[ve-1] == '\t') {
			ve--
		}
		val := b[vs:ve]
		for _, c := range val {
			if (c < 0x20 && c != '\t') || c >= 0x7f {
				return handOff, p
			}
		}
		key := canonicalKey(name)
		switch key {
		case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer", "Http2-Settings":
			return handOff, p
		case "Host":
			hosts++
			if hosts > 1 {
				return handOff, p
			}
			hs, he = vs, ve
			continue
		case "Connection":
			switch {
			case asciiEqualFold(val, "close"):
				p.close = true
			case asciiEqualFold(val, "keep-alive"):
			default:
				return handOff, p
			}
		}
		if nf == maxFields {
			return handOff, p
		}
		fields[nf] = field{key: key, vs: vs, ve: ve}
		nf++
	}
	if hosts != 1 {
		return handOff, p
	}
	blk := string(b[:i])
	p.host = blk[hs:he]
	if !httpguts.ValidHostHeader(p.host) {
		return handOff, p
	}
	u, err := url.ParseRequestURI(blk[ts:te])
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" {
		return handOff, p
	}
	p.header = make(http.Header, nf+1)
	vals := make([]string, nf)
	for k, f := range fields[:nf] {
		vals[k] = blk[f.vs:f.ve]
		if old, ok := p.header[f.key]; ok {
			p.header[f.key] = append(old, vals[k])
		} else {
			p.header[f.key] = vals[k : k+1 : k+1]
		}
	}
	if pr, ok := p.header["Pragma"]; ok && len(pr) > 0 && pr[0] == "no-cache" {
		if _, ok := p.header["Cache-Control"]; !ok {
			p.header["Cache-Control"] = []string{"no-cache"} // net/http's fixPragmaCacheControl
		}
	}
	p.target, p.url, p.n = blk[ts:te], u, i
	return take, p
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// commonKeys are header names requests usually carry, in canonical form:
// a name in this table costs no allocation.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Length", "Cookie", "Dnt", "Expect", "Host", "If-Match",
		"If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since", "Origin", "Pragma", "Range",
		"Referer", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade", "Upgrade-Insecure-Requests", "User-Agent", "Via", "X-Forwarded-For",
		"X-Forwarded-Proto", "X-Request-Id", "Priority", "Http2-Settings"} {
		m[k] = k
	}
	return m
}()

// canonicalKey is textproto.CanonicalMIMEHeaderKey of name (a token).
func canonicalKey(name []byte) string {
	if k, ok := commonKeys[string(name)]; ok { // no allocation: map lookup by []byte conversion
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}
