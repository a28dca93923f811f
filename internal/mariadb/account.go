package mariadb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Roles of the internal accounts Account makes.
const (
	// RoleMonitor watches replication and the binary log: SHOW SLAVE
	// STATUS, @@gtid_*_pos, SHOW BINARY LOGS, the process list.
	RoleMonitor = "monitor"
	// RoleReplication streams the binary log (a replica's IO thread, the
	// point-in-time log shipper) and seeds replicas with mariadb-dump,
	// which reads every database and the accounts (SELECT on *.*), takes
	// its consistent position (RELOAD for the brief FLUSH TABLES WITH READ
	// LOCK, BINLOG MONITOR) and dumps views, triggers and events.
	RoleReplication = "replication"
)

// DefaultAccountPrefix starts the internal accounts' names when neither
// AccountPrefix nor LoadUserPrefix says otherwise.
const DefaultAccountPrefix = "aipress_"

// accountMaxConnections bounds each internal account's sessions.
const accountMaxConnections = 20

var accountRoles = map[string]struct {
	suffix string
	grant  string
}{
	RoleMonitor:     {"mon", "BINLOG MONITOR, SLAVE MONITOR, PROCESS"},
	RoleReplication: {"repl", "REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR, SELECT, RELOAD, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER"},
}

// accountPrefix starts the internal accounts' names: AccountPrefix, else
// the shard's name prefix (LoadUserPrefix is it plus "ld_"), else
// DefaultAccountPrefix. A shard's orphan collection matches only its
// prefix followed by a site id (12 hex digits), and CollectLoadUsers only
// LoadUserPrefix: "<prefix>mon" and "<prefix>repl" are neither.
func (s *Server) accountPrefix() string {
	if s.AccountPrefix != "" {
		return s.AccountPrefix
	}
	if p, ok := strings.CutSuffix(s.LoadUserPrefix, "ld_"); ok && p != "" {
		return p
	}
	return DefaultAccountPrefix
}

// AccountName is the user name of the internal account for role.
func (s *Server) AccountName(role string) (string, error) {
	r, ok := accountRoles[role]
	if !ok {
		return "", fmt.Errorf("mariadb: unknown account role %q", role)
	}
	n := s.accountPrefix() + r.suffix
	if !ident.MatchString(n) {
		return "", fmt.Errorf("mariadb: account prefix %q makes an invalid user name", s.accountPrefix())
	}
	return n, nil
}

func (s *Server) accountFile(role string) string {
	return filepath.Join(s.Dir, "account-"+role+".password")
}

// accountHosts are the host parts an internal account is created with: a
// local server's clients come over the socket (localhost) or loopback TCP
// (127.0.0.1: a replica's IO thread); a remote server's from anywhere
// its site users may (Remote.UserHost).
func (s *Server) accountHosts() []string {
	if s.Remote != nil {
		return []string{s.Remote.UserHost}
	}
	return []string{"localhost", "127.0.0.1"}
}

// Account ensures the internal account for role (RoleMonitor or
// RoleReplication) and returns its user name and password. The password is
// generated once and kept in Dir (0600); the account is (re)created and
// (re)granted on the first call of each process (a restart repairs it). On a remote server the
// admin user needs those privileges WITH GRANT OPTION.
//
// A replica has the accounts of its primary (they replicate): for a replica
// of a local primary Account returns the primary's; a replica of a remote
// primary has none of its own (its owner knows the primary's).
func (s *Server) Account(ctx context.Context, role string) (user, password string, err error) {
	return s.account(ctx, role, false)
}

// account is Account; the account is (re)created and (re)granted on the
// first call of this process and when force is set, since every statement
// goes to the binary log (and to the replicas).
func (s *Server) account(ctx context.Context, role string, force bool) (user, password string, err error) {
	if s.ReplicaOf != nil {
		return s.ReplicaOf.account(ctx, role, force)
	}
	if s.ReplicaOfRemote != nil {
		return "", "", errors.New("mariadb: a replica of a remote primary has that primary's accounts; ask the primary")
	}
	user, err = s.AccountName(role)
	if err != nil {
		return "", "", err
	}
	if s.db == nil {
		return "", "", errors.New("mariadb: server not running")
	}
	s.accountMu.Lock()
	defer s.accountMu.Unlock()
	f := s.accountFile(role)
	if b, err := os.ReadFile(f); err == nil && len(strings.TrimSpace(string(b))) == 32 {
		password = strings.TrimSpace(string(b))
	} else {
		password = randomHex(16)
		if err := writeFileAtomic(f, []byte(password+"\n"), 0o600); err != nil {
			return "", "", fmt.Errorf("mariadb: account %s: %w", role, err)
		}
	}
	if s.accountsDone[role] == password && !force {
		return user, password, nil
	}
	for _, host := range s.accountHosts() {
		for _, q := range []string{
			fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY '%s' WITH MAX_USER_CONNECTIONS %d", user, host, password, accountMaxConnections),
			fmt.Sprintf("ALTER USER '%s'@'%s' IDENTIFIED BY '%s' WITH MAX_USER_CONNECTIONS %d", user, host, password, accountMaxConnections),
			fmt.Sprintf("GRANT %s ON *.* TO '%s'@'%s'", accountRoles[role].grant, user, host),
		} {
			if _, err := s.db.ExecContext(ctx, q); err != nil {
				return "", "", fmt.Errorf("mariadb: account %s: %w", role, err)
			}
		}
	}
	if s.accountsDone == nil {
		s.accountsDone = map[string]string{}
	}
	s.accountsDone[role] = password
	return user, password, nil
}
