package api

import (
	"context"
	"fmt"
	"testing"

	"github.com/aipress/aipress/internal/site"
)

// TestShardUsage: a shard's report of its sites' sizes and statements
// lands in their hourly usage records once however often it is sent;
// figures of a site on another shard (or of no site) are ignored and
// named; out-of-bounds reports are refused; and the month's cost splits
// the shard's storage by the reported sizes, the shares still adding up
// to the shard's cost.
func TestShardUsage(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	ctx := context.Background()
	// The shard token's shard is "local".
	for name, shard := range map[string]string{"acme.test": "local", "globex.test": "s2"} {
		if _, err := e.store.UpdateSite(ctx, name, func(s *site.Site) error { s.Status.Shard = shard; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.CreateSite(ctx, &site.Site{Metadata: site.Metadata{Name: "idle.test", UID: "uid-idle", Org: "acme", CreatedAt: testNow},
		Spec: site.Spec{Domain: "idle.test", Plan: "basic"}, Status: site.Status{Shard: "local"}}); err != nil {
		t.Fatal(err)
	}
	report := map[string]any{"id": "u1", "sites": map[string]any{
		"acme.test":    map[string]any{"db_queries": 50, "db_bytes": 1 << 20, "files_bytes": 3 << 20},
		"idle.test":    map[string]any{"db_bytes": 0, "files_bytes": 0},
		"globex.test":  map[string]any{"db_queries": 7, "db_bytes": 1 << 40, "files_bytes": 1 << 40},
		"gone.example": map[string]any{"db_queries": 1},
	}}
	for i := range 3 { // the shard did not hear the first two answers
		code, m, _ := e.do(t, "POST", "/v1/agent/usage", f.secrets["shard"], report)
		if code != 200 {
			t.Fatalf("report = %d %v", code, m)
		}
		wantRecorded := 2.0
		if i > 0 {
			wantRecorded = 0
		}
		if m["recorded"] != wantRecorded || fmt.Sprint(m["ignored"]) != "[globex.test gone.example]" {
			t.Errorf("answer %d = %v, want %v recorded and globex.test, gone.example ignored", i, m, wantRecorded)
		}
	}
	code, m, _ := e.do(t, "GET", "/v1/usage?period=hour&month=2025-01", adminSecret, nil)
	if code != 200 {
		t.Fatalf("usage = %d %v", code, m)
	}
	got := ""
	for _, it := range m["items"].([]any) {
		r := it.(map[string]any)
		got += fmt.Sprintf(" %v@%v:%.0f:%.0f:%.0f", r["site"], r["shard"], r["db_queries"], r["db_bytes"], r["files_bytes"])
	}
	if want := " acme.test@local:50:1048576:3145728 idle.test@local:0:0:0"; got != want {
		t.Errorf("usage records %q, want %q (globex.test's figures from another shard ignored)", got, want)
	}

	for name, body := range map[string]any{
		"negative queries": map[string]any{"sites": map[string]any{"acme.test": map[string]any{"db_queries": -1}}},
		"negative size":    map[string]any{"sites": map[string]any{"acme.test": map[string]any{"db_bytes": -1}}},
		"huge size":        map[string]any{"sites": map[string]any{"acme.test": map[string]any{"files_bytes": int64(1) << 51}}},
		"huge count":       map[string]any{"sites": map[string]any{"acme.test": map[string]any{"db_queries": int64(1e12)}}},
		"long id":          map[string]any{"id": string(make([]byte, 129)), "sites": map[string]any{}},
		"unknown field":    map[string]any{"sites": map[string]any{"acme.test": map[string]any{"backup_bytes": 1}}},
		"too many sites": func() map[string]any {
			sites := make(map[string]any, MaxShardCapacity+1)
			for i := range MaxShardCapacity + 1 {
				sites[fmt.Sprintf("s%d.test", i)] = map[string]any{}
			}
			return map[string]any{"sites": sites}
		}(),
	} {
		if code, m, _ := e.do(t, "POST", "/v1/agent/usage", f.secrets["shard"], body); code != 400 {
			t.Errorf("%s: %d %v, want 400", name, code, m)
		}
	}
	if code, m, _ := e.do(t, "POST", "/v1/agent/usage", f.secrets["edge"], report); code != 403 {
		t.Errorf("an edge's shard usage report = %d %v, want 403", code, m)
	}

	// Cost: local's storage goes to acme.test (all the bytes), its
	// compute equally (no traffic); idle.test pays its fixed share.
	code, m, _ = e.do(t, "GET", "/v1/cost?month=2025-01", adminSecret, nil)
	if code != 200 {
		t.Fatalf("cost = %d %v", code, m)
	}
	var shardCost float64
	for _, it := range m["shards"].([]any) {
		if s := it.(map[string]any); s["shard"] == "local" {
			shardCost = s["cost_cents"].(float64)
		}
	}
	lines := map[string]map[string]any{}
	var sum float64
	for _, it := range m["sites"].([]any) {
		l := it.(map[string]any)
		if l["shard"] == "local" {
			lines[l["site"].(string)] = l
			sum += l["share_cents"].(float64)
		}
	}
	acme, idle := lines["acme.test"], lines["idle.test"]
	if acme == nil || idle == nil || sum != shardCost || shardCost == 0 {
		t.Fatalf("local's lines %v add up to %v, shard costs %v", lines, sum, shardCost)
	}
	if acme["storage_bytes"].(float64) <= 0 || idle["storage_bytes"] != 0.0 {
		t.Errorf("storage bytes: acme %v, idle %v; want acme's > 0, idle's 0", acme["storage_bytes"], idle["storage_bytes"])
	}
	if acme["fixed_cents"] != idle["fixed_cents"] || acme["usage_cents"].(float64) <= idle["usage_cents"].(float64) {
		t.Errorf("acme %v vs idle %v: want the same fixed part and a larger usage part (the storage)", acme, idle)
	}
}
