package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// scrapes is how many times the control plane's /metrics is read.
const scrapes = 5

// scrape reads the control plane's /metrics as Prometheus would (with the
// admin token) at the run's site count: time per scrape, bytes and series
// of the last one.
func (b *bench) scrape(ctx context.Context) error {
	var rec recorder
	var body []byte
	for range scrapes {
		req, err := http.NewRequestWithContext(ctx, "GET", b.cp.URL()+"/metrics", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+b.cp.Token())
		t0 := time.Now()
		resp, err := b.admin.HTTPClient.Do(req)
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("GET /metrics: %s: %.200s", resp.Status, body)
			}
		}
		rec.add(time.Since(t0), err)
		if err != nil {
			b.f.Scrape = rec.summary()
			return fmt.Errorf("scrape: %w", err)
		}
	}
	b.f.Scrape = rec.summary()
	b.f.ScrapeBytes = len(body)
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if l := sc.Bytes(); len(l) > 0 && l[0] != '#' {
			b.f.ScrapeSeries++
		}
	}
	logf("%d scrapes of the control plane's /metrics: %d bytes, %d series, p50 %s, max %s",
		b.f.Scrape.N, b.f.ScrapeBytes, b.f.ScrapeSeries, ms(b.f.Scrape.P50), ms(b.f.Scrape.Max))
	return sc.Err()
}
