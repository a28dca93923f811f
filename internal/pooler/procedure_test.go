package pooler

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"
)

// TestProcedureResultSets: a stored procedure that returns result sets
// works through the pooler as directly (PHP's mysqli and go-sql-driver):
// the pooler announces CLIENT_MULTI_RESULTS, so clients ask for it and
// the backends they get have it (without it MariaDB refuses the CALL with
// error 1312).
func TestProcedureResultSets(t *testing.T) {
	s := newSite(t, 2)
	p := startPooler(t, Config{}, s.Account)
	if err := primary.Exec(t.Context(), "CREATE PROCEDURE "+s.Database+".pooler_proc(n INT) BEGIN SELECT seq FROM seq_1_to_10 WHERE seq <= n; SELECT 'second'; END"); err != nil {
		t.Fatal(err)
	}
	// (Sites are not granted EXECUTE on the platform; a test site is.)
	if err := primary.Exec(t.Context(), "GRANT EXECUTE ON PROCEDURE "+s.Database+".pooler_proc TO '"+s.User+"'@'localhost'"); err != nil {
		t.Fatal(err)
	}

	pdb := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	rows, err := pdb.QueryContext(t.Context(), "CALL pooler_proc(2)")
	if err != nil {
		t.Fatalf("go-sql-driver: CALL: %v", err)
	}
	var got []string
	for {
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if want := "[1 2 second]"; fmtSlice(got) != want {
		t.Fatalf("go-sql-driver: CALL gave %v, want %s", got, want)
	}
	if v := queryString(t, pdb, "SELECT 'after'"); v != "after" {
		t.Fatalf("after the CALL: %q", v)
	}

	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php not installed")
	}
	for _, sock := range []string{primary.Socket(), p.cfg.Socket} {
		cmd := exec.Command(php, "testdata/procedure.php")
		cmd.Env = append(os.Environ(), "DB_SOCKET="+sock, "DB_USER="+s.User, "DB_PASSWORD="+s.Password, "DB_NAME="+s.Database)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("php: %v\n%s", err, out)
		}
		var m struct {
			Rows  []string `json:"rows"`
			Errno int      `json:"errno"`
			Error string   `json:"error"`
			After string   `json:"after"`
		}
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("php output %s: %v", out, err)
		}
		if fmtSlice(m.Rows) != "[1 2 3 second]" || m.Errno != 0 || m.After != "after" {
			t.Fatalf("mysqli through %s: %s", sock, out)
		}
	}
}

func fmtSlice(s []string) string {
	b, _ := json.Marshal(s)
	out := "["
	var v []string
	_ = json.Unmarshal(b, &v)
	for i, x := range v {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}
