package controlplane

import (
	"log/slog"
	"testing"

	"github.com/aipress/aipress/internal/leader"
)

func TestNewElector(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if el, err := newElector("", log); err != nil || el != (leader.Solo{}) {
		t.Errorf("SQLite: elector %T, %v; want leader.Solo", el, err)
	}
	el, err := newElector("postgres://aipress@db.example.com/aipress", log)
	if e, ok := el.(*leader.Elector); err != nil || !ok || e.Name != LeaseName {
		t.Errorf("PostgreSQL: elector %T, %v; want *leader.Elector on %q", el, err, LeaseName)
	}
	if _, err := newElector("mysql://db/x", log); err == nil {
		t.Error("unknown store: no error")
	}
}
