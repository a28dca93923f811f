package mariadb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// prepareRemote readies Dir for a remote server: it holds only the client
// option file the command-line tools log in with.
func (s *Server) prepareRemote() error {
	if err := s.Remote.check(); err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	if err := os.Chmod(s.Dir, 0o700); err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	return s.writeClientConfig()
}

// writeRemoteClientConfig writes the option file the mariadb and
// mariadb-dump clients use to reach the remote server as its admin user
// over TCP. It is root's alone (0600): the password is on no command line.
func (s *Server) writeRemoteClientConfig() error {
	r := s.Remote
	host, port, err := net.SplitHostPort(r.Addr)
	if err != nil {
		return fmt.Errorf("mariadb: remote server address %q: %w", r.Addr, err)
	}
	for _, v := range []string{host, port, r.User, r.Password} {
		if strings.ContainsAny(v, "\r\n\x00") {
			return errors.New("mariadb: remote server settings contain a line break")
		}
	}
	conf := fmt.Sprintf("# Written by aipress; changes are overwritten.\n[client]\nprotocol = tcp\nhost = %s\nport = %s\nuser = %s\npassword = %s\n",
		optionValue(host), optionValue(port), optionValue(r.User), optionValue(r.Password))
	if err := writeFileAtomic(s.clientConfig(), []byte(conf), 0o600); err != nil {
		return fmt.Errorf("mariadb: write client config: %w", err)
	}
	return os.Chmod(s.clientConfig(), 0o600)
}

// optionValue quotes v for an option file: between double quotes (which
// keep spaces and '#'), with backslashes escaped.
func optionValue(v string) string {
	return `"` + strings.ReplaceAll(v, `\`, `\\`) + `"`
}

// runRemote connects to the remote server, retrying until it answers
// (a server that starts after the shard is normal on Kubernetes), closes
// Ready and waits for ctx. The connection pool reconnects by itself later.
func (s *Server) runRemote(ctx context.Context) error {
	start, warned := time.Now(), time.Time{}
	for {
		err := s.connectRemote(ctx)
		if err == nil {
			close(s.ready)
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(warned) > 30*time.Second && time.Since(start) > 5*time.Second {
			warned = time.Now()
			if s.Logger != nil {
				s.Logger.Warn("waiting for the database server", "addr", s.Remote.Addr, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	<-ctx.Done()
	return nil
}

func (s *Server) connectRemote(ctx context.Context) error {
	if s.db == nil {
		db, err := s.open(s.Remote.User, s.Remote.Password, "")
		if err != nil {
			return err
		}
		db.SetMaxOpenConns(4)
		s.db = db
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.db.PingContext(pctx); err != nil {
		return fmt.Errorf("mariadb: connect to %s as %s: %w", s.Remote.Addr, s.Remote.User, err)
	}
	return nil
}

// freezeRemote is FreezeWrites on a remote server. The site user's
// connections come from several hosts, so they are found in the process
// list and ended one by one (endSessions) rather than by KILL USER
// 'u'@'host' (which matches the connection's host literally, not the
// account's pattern).
func (s *Server) freezeRemote(ctx context.Context, name, userName string) error {
	q := fmt.Sprintf("REVOKE %s ON `%s`.* FROM '%s'@'%s'", writePrivileges, grantDB(name), userName, s.userHost())
	if _, err := s.db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("mariadb: freeze writes to %s: %w", name, err)
	}
	if err := s.endSessions(ctx, userName); err != nil {
		return fmt.Errorf("mariadb: freeze writes to %s: %w", name, err)
	}
	return nil
}

// endSessions ends every open connection of userName, from any host.
func (s *Server) endSessions(ctx context.Context, userName string) error {
	rows, err := s.db.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", userName)
	if err != nil {
		return fmt.Errorf("sessions of %s: %w", userName, err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("sessions of %s: %w", userName, err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sessions of %s: %w", userName, err)
	}
	for _, id := range ids {
		_, err := s.db.ExecContext(ctx, fmt.Sprintf("KILL %d", id))
		var me *mysql.MySQLError
		if err != nil && !(errors.As(err, &me) && me.Number == 1094) { // 1094: unknown thread: it ended meanwhile
			return fmt.Errorf("end connection %d of %s: %w", id, userName, err)
		}
	}
	return s.awaitEnded(ctx, userName, ids)
}

// sessionEndWait bounds how long endSessions waits for killed connections
// to leave the process list.
const sessionEndWait = 10 * time.Second

// awaitEnded waits until none of the connections ids is in the process
// list. KILL only marks a connection: its thread notices, rolls back and
// leaves a moment later, and until then it still counts as a session of
// the account. Only the killed ids are awaited: the account may open new
// connections meanwhile (a freeze revokes writes, not the login).
func (s *Server) awaitEnded(ctx context.Context, userName string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = fmt.Sprint(id)
	}
	q := "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN (" + strings.Join(list, ",") + ")"
	ctx, cancel := context.WithTimeout(ctx, sessionEndWait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var n int
		if err := s.db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return fmt.Errorf("end connections of %s: %w", userName, err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("end connections of %s: %d still open after KILL: %w", userName, n, ctx.Err())
		case <-tick.C:
		}
	}
}
