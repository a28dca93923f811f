package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// `aipress up --shards 2 --shard-capacity 1`: two in-process shards take a
// site each, the third site makes `up` start a third shard; a site moves
// between in-process shards and keeps serving its content; the shards come
// back after a restart.
func TestUpShards(t *testing.T) {
	p := newPlatform(t)
	p.extraArgs = []string{"--shards", "2", "--shard-capacity", "1"}
	p.start()
	on := map[string]string{}
	for _, d := range []string{"u1.localhost", "u2.localhost", "u3.localhost"} {
		c := p.createSite(d, "Up "+d)
		on[d] = c.Shard
		p.client(d).waitStatus("/", 200, 30*time.Second)
	}
	if on["u1.localhost"] == on["u2.localhost"] || on["u3.localhost"] != "local-3" {
		t.Fatalf("placement = %v; want one site on each of local and local-2, the third on a new local-3", on)
	}
	// Make room on one shard, then move the third site there.
	free := on["u1.localhost"]
	if out, err := p.cli("site", "delete", "u1.localhost", "--wait"); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	out, err := p.cli("site", "move", "u3.localhost", "--to", free, "--wait-cleanup", "-o", "json")
	if err != nil {
		t.Fatalf("move: %v\n%s", err, out)
	}
	var mv struct {
		Phase string `json:"phase"`
	}
	if err := json.Unmarshal([]byte(out), &mv); err != nil || mv.Phase != "Done" {
		t.Fatalf("move: %v\n%s", err, out)
	}
	if got := field(p.siteJSON("u3.localhost"), "status", "shard"); got != free {
		t.Fatalf("after the move u3 is on %q, want %q", got, free)
	}
	if body := p.client("u3.localhost").waitStatus("/", 200, 30*time.Second); !strings.Contains(body, "Up u3.localhost") {
		t.Fatalf("u3 after the move: %.300s", body)
	}
	// A restart brings every shard back, the auto-created one included.
	p.stop()
	p.start()
	for _, d := range []string{"u2.localhost", "u3.localhost"} {
		p.client(d).waitStatus("/", 200, 60*time.Second)
	}
	out, err = p.cli("shard", "list", "-o", "json")
	if err != nil || !strings.Contains(out, `"local-3"`) {
		t.Fatalf("shard list after restart: %v\n%s", err, out)
	}
}
