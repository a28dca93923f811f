package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// Statistics are a server's figures for the shard's metrics (package
// shardmetrics): the server's global counters and, per database and
// account of a prefix, size, connections and statements.
type Statistics struct {
	// Up: the server answered.
	Up bool
	// Global: from SHOW GLOBAL STATUS.
	Uptime, Questions, SlowQueries, ThreadsConnected, ThreadsRunning, MaxUsedConnections float64
	// Schemas by database name: its tables' data and index bytes.
	SchemaBytes map[string]int64
	// Users by account name (information_schema.USER_STATISTICS, which
	// needs userstat = ON: a local server has it, a remote one may not;
	// nil then): open connections and statements run since the server
	// started.
	Users map[string]UserStatistics
}

// UserStatistics are one account's counters.
type UserStatistics struct {
	Connections int64
	Statements  uint64 // SELECT, UPDATE-like and other commands
}

// Statistics reads the server's figures; databases and accounts are those
// whose names start with prefix. A server that does not answer gives
// Up false and no error; a query that fails after the server answered
// gives its error with what was read before.
func (s *Server) Statistics(ctx context.Context, prefix string) (*Statistics, error) {
	st := &Statistics{}
	if s.db == nil || s.db.PingContext(ctx) != nil {
		return st, nil
	}
	st.Up = true
	rows, err := s.db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Uptime','Questions','Slow_queries','Threads_connected','Threads_running','Max_used_connections')")
	if err != nil {
		return st, fmt.Errorf("mariadb: global status: %w", err)
	}
	global := map[string]*float64{"uptime": &st.Uptime, "questions": &st.Questions, "slow_queries": &st.SlowQueries,
		"threads_connected": &st.ThreadsConnected, "threads_running": &st.ThreadsRunning, "max_used_connections": &st.MaxUsedConnections}
	err = scanRows(rows, func(r *sql.Rows) error {
		var k, v string
		if err := r.Scan(&k, &v); err != nil {
			return err
		}
		if p := global[strings.ToLower(k)]; p != nil {
			*p, _ = strconv.ParseFloat(v, 64)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("mariadb: global status: %w", err)
	}
	like := strings.ReplaceAll(prefix, "_", `\_`) + "%"
	rows, err = s.db.QueryContext(ctx, "SELECT TABLE_SCHEMA, SUM(IFNULL(DATA_LENGTH,0)+IFNULL(INDEX_LENGTH,0)) FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE ? GROUP BY TABLE_SCHEMA", like)
	if err != nil {
		return st, fmt.Errorf("mariadb: schema sizes: %w", err)
	}
	st.SchemaBytes = map[string]int64{}
	err = scanRows(rows, func(r *sql.Rows) error {
		var name string
		var n int64
		if err := r.Scan(&name, &n); err != nil {
			return err
		}
		st.SchemaBytes[name] = n
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("mariadb: schema sizes: %w", err)
	}
	rows, err = s.db.QueryContext(ctx, "SELECT USER, CONCURRENT_CONNECTIONS, SELECT_COMMANDS+UPDATE_COMMANDS+OTHER_COMMANDS FROM information_schema.USER_STATISTICS WHERE USER LIKE ?", like)
	if err != nil {
		return st, nil // no userstat here (MySQL, a managed server): no per-account figures
	}
	st.Users = map[string]UserStatistics{}
	err = scanRows(rows, func(r *sql.Rows) error {
		var name string
		var u UserStatistics
		if err := r.Scan(&name, &u.Connections, &u.Statements); err != nil {
			return err
		}
		st.Users[name] = u
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("mariadb: user statistics: %w", err)
	}
	return st, nil
}

func scanRows(rows *sql.Rows, row func(*sql.Rows) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
