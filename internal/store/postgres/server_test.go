package postgres

import (
	"os"
	"testing"

	"github.com/aipress/aipress/internal/store/postgres/pgtest"
)

// pg is the test binary's PostgreSQL server (pgtest), or why there is none.
var pg pgtest.Env

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// testServer returns the shared server or skips t when there is none.
func testServer(t *testing.T) *pgtest.Server { t.Helper(); return pg.Server(t) }

// newDatabase creates a database no other test uses and returns its DSN.
func newDatabase(t *testing.T) string { t.Helper(); return testServer(t).NewDatabase(t) }

// databaseFor names the database of a storetest dir.
func databaseFor(dir string) string { return pgtest.DatabaseFor(dir) }
