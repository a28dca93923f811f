package edge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sort"
)

// FastCGIGet sends one GET request with params (SCRIPT_NAME and the like)
// over a new connection to the FastCGI application at network and address
// ("unix" and a socket path, or "tcp" and host:port) and returns the body
// of its answer, headers stripped, at most maxBody bytes. It is for small
// answers such as php-fpm's status page (package shardmetrics); visitors'
// requests go through Server. ctx bounds the whole exchange.
func FastCGIGet(ctx context.Context, network, address string, params map[string]string, maxBody int64) ([]byte, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("fastcgi: dial %s: %w", address, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return nil, fmt.Errorf("fastcgi: %w", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	p := []param{{"REQUEST_METHOD", "GET"}, {"SERVER_PROTOCOL", "HTTP/1.1"}, {"GATEWAY_INTERFACE", "CGI/1.1"}}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p = append(p, param{k, params[k]})
	}
	rw := newRecordWriter(conn, 4<<10)
	if err := rw.beginRequest(); err != nil {
		return nil, err
	}
	if err := rw.params(p); err != nil {
		return nil, err
	}
	if err := rw.stdin(nil); err != nil {
		return nil, err
	}
	out := newStdoutReader(conn)
	defer out.release()
	raw, err := io.ReadAll(io.LimitReader(out, maxBody+16<<10))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fastcgi: %w", ctx.Err())
		}
		return nil, err
	}
	// The body follows the CGI headers and their blank line.
	_, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		if _, body, ok = bytes.Cut(raw, []byte("\n\n")); !ok {
			return nil, fmt.Errorf("fastcgi: answer without headers (%d bytes)", len(raw))
		}
	}
	if int64(len(body)) > maxBody {
		return nil, fmt.Errorf("fastcgi: answer longer than %d bytes", maxBody)
	}
	return body, nil
}
