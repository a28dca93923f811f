package edge

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// A minimal FastCGI (responder role) client: one request per connection,
// request id 1, no multiplexing. See the package documentation for why this
// is not github.com/yookoala/gofast.

const (
	fcgiVersion1       = 1
	fcgiBeginRequest   = 1
	fcgiEndRequest     = 3
	fcgiParams         = 4
	fcgiStdin          = 5
	fcgiStdout         = 6
	fcgiStderr         = 7
	fcgiResponder      = 1
	fcgiRequestID      = 1
	fcgiMaxContent     = 65535
	fcgiHeaderLen      = 8
	fcgiStdinChunk     = 32 << 10
	fcgiMaxStderrBytes = 16 << 10
)

// errParamTooLarge reports a single name/value pair that cannot fit in one
// FCGI_PARAMS record (php-fpm parses each record on its own).
var errParamTooLarge = errors.New("fastcgi: parameter larger than one record")

// fcgiRecordWriter writes FastCGI records for request id 1.
type fcgiRecordWriter struct {
	w   io.Writer
	buf []byte
}

// newRecordWriter returns a record writer to w whose buffer starts with
// room for size bytes of content (it grows to the largest record written).
func newRecordWriter(w io.Writer, size int) *fcgiRecordWriter {
	return &fcgiRecordWriter{w: w, buf: make([]byte, 0, fcgiHeaderLen+size+8)}
}

// record writes one record whose content is at most fcgiMaxContent bytes.
func (rw *fcgiRecordWriter) record(typ uint8, content []byte) error {
	if len(content) > fcgiMaxContent {
		return fmt.Errorf("fastcgi: record content of %d bytes", len(content))
	}
	pad := (8 - len(content)%8) % 8
	b := rw.buf[:0]
	b = append(b, fcgiVersion1, typ, 0, fcgiRequestID,
		byte(len(content)>>8), byte(len(content)), byte(pad), 0)
	b = append(b, content...)
	b = append(b, make([]byte, pad)...)
	rw.buf = b
	if _, err := rw.w.Write(b); err != nil {
		return fmt.Errorf("fastcgi: write record: %w", err)
	}
	return nil
}

// beginRequest writes FCGI_BEGIN_REQUEST (responder, connection closed by
// the application when done).
func (rw *fcgiRecordWriter) beginRequest() error {
	return rw.record(fcgiBeginRequest, []byte{0, fcgiResponder, 0, 0, 0, 0, 0, 0})
}

// params writes the name/value pairs, packing whole pairs into records, and
// the empty record that ends the stream.
func (rw *fcgiRecordWriter) params(p []param) error {
	var rec []byte
	for _, kv := range p {
		var pair []byte
		pair = appendLen(pair, len(kv.name))
		pair = appendLen(pair, len(kv.value))
		pair = append(pair, kv.name...)
		pair = append(pair, kv.value...)
		if len(pair) > fcgiMaxContent {
			return fmt.Errorf("%w: %s (%d bytes)", errParamTooLarge, kv.name, len(pair))
		}
		if len(rec)+len(pair) > fcgiMaxContent {
			if err := rw.record(fcgiParams, rec); err != nil {
				return err
			}
			rec = rec[:0]
		}
		rec = append(rec, pair...)
	}
	if len(rec) > 0 {
		if err := rw.record(fcgiParams, rec); err != nil {
			return err
		}
	}
	return rw.record(fcgiParams, nil)
}

func appendLen(b []byte, n int) []byte {
	if n <= 127 {
		return append(b, byte(n))
	}
	return binary.BigEndian.AppendUint32(b, uint32(n)|1<<31)
}

// stdin copies body into FCGI_STDIN records and ends the stream. A read error
// from body is returned as is (wrapped), so callers can recognise
// *http.MaxBytesError.
func (rw *fcgiRecordWriter) stdin(body io.Reader) error {
	if body != nil {
		bp := stdinBufs.Get().(*[]byte)
		defer stdinBufs.Put(bp)
		buf := *bp
		for {
			n, err := body.Read(buf)
			if n > 0 {
				if werr := rw.record(fcgiStdin, buf[:n]); werr != nil {
					return werr
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("read request body: %w", err)
			}
		}
	}
	return rw.record(fcgiStdin, nil)
}

type param struct{ name, value string }

// stdoutReader reads a FastCGI response stream and presents FCGI_STDOUT as an
// io.Reader. FCGI_STDERR content is collected (bounded) for logging; the
// stream ends at FCGI_END_REQUEST.
type stdoutReader struct {
	br        *bufio.Reader
	remaining int // unread content bytes of the current stdout record
	padding   int // padding after the current stdout record
	done      bool
	err       error
	stderr    strings.Builder
	appStatus uint32
}

func newStdoutReader(r io.Reader) *stdoutReader {
	br := stdoutBufs.Get().(*bufio.Reader)
	br.Reset(r)
	return &stdoutReader{br: br}
}

// release gives the reader's buffer back for another request; s must not
// be used after.
func (s *stdoutReader) release() {
	if s.br != nil {
		s.br.Reset(nil)
		stdoutBufs.Put(s.br)
		s.br = nil
	}
}

// Buffers an uncached request uses once each, kept for the next request
// instead of being allocated (and zeroed) again: about 150 KiB a request
// before.
var (
	stdoutBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
	stdinBufs  = sync.Pool{New: func() any { b := make([]byte, fcgiStdinChunk); return &b }}
)

// pending reports whether more response bytes can be read without blocking.
func (s *stdoutReader) pending() bool {
	return s.remaining > 0 && s.br.Buffered() > 0
}

func (s *stdoutReader) Read(p []byte) (int, error) {
	for s.remaining == 0 {
		if s.done {
			return 0, io.EOF
		}
		if s.err != nil {
			return 0, s.err
		}
		if err := s.next(); err != nil {
			s.err = err
			return 0, err
		}
	}
	if len(p) > s.remaining {
		p = p[:s.remaining]
	}
	n, err := s.br.Read(p)
	s.remaining -= n
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		s.err = fmt.Errorf("fastcgi: read stdout: %w", err)
		return n, s.err
	}
	if s.remaining == 0 && s.padding > 0 {
		if _, err := s.br.Discard(s.padding); err != nil {
			s.err = fmt.Errorf("fastcgi: read padding: %w", err)
		}
		s.padding = 0
	}
	return n, nil
}

// next consumes records until a non-empty stdout record starts or the
// request ends.
func (s *stdoutReader) next() error {
	var h [fcgiHeaderLen]byte
	if _, err := io.ReadFull(s.br, h[:]); err != nil {
		if err == io.EOF {
			return fmt.Errorf("fastcgi: connection closed before end of request: %w", io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("fastcgi: read record header: %w", err)
	}
	if h[0] != fcgiVersion1 {
		return fmt.Errorf("fastcgi: unsupported record version %d", h[0])
	}
	typ := h[1]
	clen := int(binary.BigEndian.Uint16(h[4:6]))
	plen := int(h[6])
	switch typ {
	case fcgiStdout:
		s.remaining, s.padding = clen, plen
		if clen == 0 {
			_, err := s.br.Discard(plen)
			return wrapIf(err, "fastcgi: read padding")
		}
		return nil
	case fcgiStderr:
		room := fcgiMaxStderrBytes - s.stderr.Len()
		buf := make([]byte, clen)
		if _, err := io.ReadFull(s.br, buf); err != nil {
			return fmt.Errorf("fastcgi: read stderr: %w", err)
		}
		if room > 0 {
			s.stderr.Write(buf[:min(room, len(buf))])
		}
		_, err := s.br.Discard(plen)
		return wrapIf(err, "fastcgi: read padding")
	case fcgiEndRequest:
		var body [8]byte
		if clen < 8 {
			return fmt.Errorf("fastcgi: short end-request record (%d bytes)", clen)
		}
		if _, err := io.ReadFull(s.br, body[:]); err != nil {
			return fmt.Errorf("fastcgi: read end-request: %w", err)
		}
		if _, err := s.br.Discard(clen - 8 + plen); err != nil {
			return fmt.Errorf("fastcgi: read end-request: %w", err)
		}
		s.appStatus = binary.BigEndian.Uint32(body[:4])
		s.done = true
		switch body[4] {
		case 0: // FCGI_REQUEST_COMPLETE
			return nil
		case 1:
			return errors.New("fastcgi: application cannot multiplex connections")
		case 2:
			return errors.New("fastcgi: application overloaded")
		default:
			return fmt.Errorf("fastcgi: request rejected, protocol status %d", body[4])
		}
	default: // unknown or management record: skip
		_, err := s.br.Discard(clen + plen)
		return wrapIf(err, "fastcgi: skip record")
	}
}

func wrapIf(err error, msg string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", msg, err)
}
