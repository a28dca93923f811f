package shard_test

import (
	"context"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
)

// gatedSites is a shard.Sites whose ListSites says it was entered and,
// when gate is set, waits for it to be closed.
type gatedSites struct {
	shard.Sites
	entered chan<- struct{}
	gate    <-chan struct{}
}

func (g gatedSites) ListSites(ctx context.Context, name string) ([]site.Site, error) {
	g.entered <- struct{}{}
	if g.gate != nil {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Sites.ListSites(ctx, name)
}

// convergeAfter runs one pass of sh in which fn runs first (before the
// pass lists the sites): no pass of the shard's own loop runs between fn
// and the pass. A link removed by fn while one of the loop's passes is
// half-way through the site (after it linked the site's code, before it
// observed what the site runs) would be observed as gone, and the status
// would no longer say the site ran it.
func (c *cluster) convergeAfter(sh *shard.Shard, fn func()) error {
	return sh.Converge(c.ctx, beforeList{Sites: c.src, fn: fn})
}

// beforeList is a shard.Sites whose ListSites runs fn first.
type beforeList struct {
	shard.Sites
	fn func()
}

func (b beforeList) ListSites(ctx context.Context, name string) ([]site.Site, error) {
	b.fn()
	return b.Sites.ListSites(ctx, name)
}

// TestConvergePassesOneAtATime: a pass collects as orphans the resources
// of the sites missing from the list it took at its start, so a second
// pass beside it (one that made a newer site's resources) must wait for
// it. TestCodeArtefacts lost a new site's database and files that way
// when a test's pass ran beside the shard's own.
func TestConvergePassesOneAtATime(t *testing.T) {
	c := newCluster(t)
	sh := c.start("alpha")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	enteredA, enteredB := make(chan struct{}, 1), make(chan struct{}, 1)
	gate := make(chan struct{})
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go func() { doneA <- sh.Converge(ctx, gatedSites{Sites: c.src, entered: enteredA, gate: gate}) }()
	select {
	case <-enteredA:
	case <-ctx.Done():
		t.Fatal("the first pass never listed the sites")
	}
	go func() { doneB <- sh.Converge(ctx, gatedSites{Sites: c.src, entered: enteredB}) }()
	select {
	case <-enteredB:
		t.Fatal("a second pass started while the first was still running")
	case <-time.After(500 * time.Millisecond):
	}
	close(gate)
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	select {
	case <-enteredB:
	case <-ctx.Done():
		t.Fatal("the second pass never ran")
	}
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
}
