package wxr

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// FetchFailure is an attachment that was not downloaded, and why.
type FetchFailure struct {
	Item   int64  `json:"item"`
	URL    string `json:"url"`
	Reason string `json:"reason"`
}

// WriteRecords writes the records of the WXR file r to w as JSON lines,
// each an object with "t" ("author", "term", "item") and the record's
// fields: the import script's input (package wordpress, wxr.php). An
// attachment item is fetched with f into scratch (nil f: none are, and
// attachment items are left out as the importer does without "Download
// and import file attachments") and written with its bytes, or left out
// and reported. progress, if set, is told the bytes of r read.
func WriteRecords(ctx context.Context, r io.Reader, lim Limits, f *Fetcher, scratch string, w io.Writer, progress func(done int64)) (fetched int, failures []FetchFailure, err error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	cr := &countReader{r: r, fn: progress}
	write := func(t string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(bw, "{\"t\":%q,%s\n", t, b[1:]); err != nil {
			return err
		}
		return nil
	}
	_, err = Scan(cr, lim, func(rec Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case rec.Author != nil:
			return write("author", rec.Author)
		case rec.Term != nil:
			return write("term", rec.Term)
		case rec.Item != nil:
			it := rec.Item
			if it.Type != "attachment" {
				return write("item", it)
			}
			if f == nil {
				return nil
			}
			file, name, err := f.Fetch(ctx, it.AttachmentURL, scratch)
			if err != nil {
				failures = append(failures, FetchFailure{Item: it.ID, URL: it.AttachmentURL, Reason: err.Error()})
				return nil
			}
			defer os.Remove(file)
			if it.File, err = os.ReadFile(file); err != nil {
				return err
			}
			it.FileName = name
			fetched++
			// Flushed at once: the bytes are not kept twice.
			if err := write("item", it); err != nil {
				return err
			}
			it.File = nil
			return bw.Flush()
		}
		return nil
	})
	if err != nil {
		return fetched, failures, err
	}
	return fetched, failures, bw.Flush()
}

type countReader struct {
	r    io.Reader
	n    int64
	last int64
	fn   func(int64)
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.fn != nil && (c.n-c.last >= 1<<20 || err == io.EOF) {
		c.last = c.n
		c.fn(c.n)
	}
	return n, err
}
