package shard

import (
	"slices"
	"testing"

	"github.com/aipress/aipress/internal/shardlayout"
)

// TestDBUsersAreBothSlots: shardlayout's Names.DBUsers, which the usage
// figures and the shard's metrics sum statements over, names the accounts
// of both rotation slots, so a counter does not drop at a rotation.
func TestDBUsersAreBothSlots(t *testing.T) {
	n := shardlayout.Layout{Name: "s1", Dir: "/srv/s1"}.Site("uid-1")
	got := n.DBUsers()
	for _, slot := range []string{"", "b"} {
		if !slices.Contains(got, dbUserFor(n, slot)) {
			t.Errorf("DBUsers() = %v: no account of slot %q (%s)", got, slot, dbUserFor(n, slot))
		}
	}
}
