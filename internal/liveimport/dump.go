package liveimport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// DB says where the site's database is dumped from.
type DB struct {
	// DSN, if set, is mysql://user:pass@host[:port]/db: a connection
	// tunnelled through the SSH connection (host as the server sees it),
	// dumped by the local mariadb-dump. Empty: the server's own
	// mysqldump (or mariadb-dump), with wp-config.php's credentials.
	DSN string
}

// Credentials are a database's connection details.
type Credentials struct {
	Name, User, Password string
	// Host and Port, or Socket (a Unix socket on the server).
	Host   string
	Port   int
	Socket string
}

var (
	defineRE = regexp.MustCompile(`(?m)(?:^|;)[ \t]*define\s*\(\s*['"](DB_NAME|DB_USER|DB_PASSWORD|DB_HOST)['"]\s*,\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\)`)
	dbNameRE = regexp.MustCompile(`^[A-Za-z0-9_$-]{1,64}$`)
)

// ParseWPConfig reads the database settings of a wp-config.php (the
// define() lines with literal strings; anything computed is not read).
func ParseWPConfig(b []byte) (Credentials, error) {
	var c Credentials
	host := "localhost"
	found := map[string]bool{}
	for _, m := range defineRE.FindAllSubmatch(b, -1) {
		v := string(m[2])
		if m[3] != nil {
			v = string(m[3])
		}
		v = strings.NewReplacer(`\\`, `\`, `\'`, `'`, `\"`, `"`).Replace(v)
		found[string(m[1])] = true
		switch string(m[1]) {
		case "DB_NAME":
			c.Name = v
		case "DB_USER":
			c.User = v
		case "DB_PASSWORD":
			c.Password = v
		case "DB_HOST":
			host = v
		}
	}
	for _, k := range []string{"DB_NAME", "DB_USER"} {
		if !found[k] {
			return c, fmt.Errorf("wp-config.php defines no %s as a literal string: give the database with --db mysql://user:pass@host:port/db", k)
		}
	}
	// DB_HOST: host, host:port, host:/socket, or :/socket.
	c.Host = host
	if i := strings.Index(host, ":"); i >= 0 && !strings.HasPrefix(host, "[") {
		c.Host = host[:i]
		rest := host[i+1:]
		if strings.HasPrefix(rest, "/") {
			c.Socket = rest
		} else if p, err := strconv.Atoi(rest); err == nil {
			c.Port = p
		}
	}
	if c.Host == "" {
		c.Host = "localhost"
	}
	return c, nil
}

// ParseDSN reads mysql://user:pass@host[:port]/db.
func ParseDSN(dsn string) (Credentials, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "mysql" || u.Host == "" || u.User == nil {
		return Credentials{}, fmt.Errorf("database %q: want mysql://user:pass@host[:port]/db", redactDSN(dsn))
	}
	c := Credentials{User: u.User.Username(), Name: strings.TrimPrefix(u.Path, "/"), Host: u.Hostname(), Port: 3306}
	c.Password, _ = u.User.Password()
	if p := u.Port(); p != "" {
		if c.Port, err = strconv.Atoi(p); err != nil {
			return Credentials{}, fmt.Errorf("database %q: bad port", redactDSN(dsn))
		}
	}
	return c, nil
}

func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		u.User = url.User(u.User.Username())
		return u.String()
	}
	return "(unparsable)"
}

// optionFile is a MySQL option file's [client] group for c (given to the
// dump on its standard input: the password is on no command line).
func optionFile(c Credentials, host string, port int, socket string) string {
	q := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
	}
	var b strings.Builder
	b.WriteString("[client]\n")
	fmt.Fprintf(&b, "user=%s\npassword=%s\n", q(c.User), q(c.Password))
	if socket != "" {
		fmt.Fprintf(&b, "socket=%s\n", q(socket))
	} else {
		fmt.Fprintf(&b, "host=%s\n", q(host))
		if port > 0 {
			fmt.Fprintf(&b, "port=%d\n", port)
		}
	}
	return b.String()
}

// dumpArgs are the dump's options after --defaults-extra-file: one
// transaction, binary as hex, utf8mb4, no tablespaces (MySQL 8 needs
// PROCESS otherwise), no routines or events (the import drops them).
var dumpArgs = []string{"--single-transaction", "--quick", "--skip-lock-tables", "--hex-blob", "--skip-comments",
	"--default-character-set=utf8mb4", "--add-drop-table", "--no-tablespaces", "--skip-routines", "--skip-events"}

// WPConfig reads the docroot's wp-config.php (or the one in the
// directory above, as WordPress allows) through SFTP.
func (c *Conn) WPConfig() ([]byte, error) {
	for _, p := range []string{path.Join(c.root, "wp-config.php"), path.Join(path.Dir(c.root), "wp-config.php")} {
		f, err := c.sftp.Open(p)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(f, 1<<20))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("no wp-config.php in %s or above it on %s: give the database with --db mysql://user:pass@host:port/db", c.src.Path, c.src.Host)
}

// Dump writes the site's database dump to w.
func (c *Conn) Dump(ctx context.Context, db DB, w io.Writer) error {
	if db.DSN != "" {
		cred, err := ParseDSN(db.DSN)
		if err != nil {
			return err
		}
		return c.dumpTunnelled(ctx, cred, w)
	}
	b, err := c.WPConfig()
	if err != nil {
		return err
	}
	cred, err := ParseWPConfig(b)
	if err != nil {
		return err
	}
	return c.dumpRemote(ctx, cred, w)
}

// dumpRemote runs the server's mariadb-dump (else mysqldump) through an
// exec channel, its options on stdin.
func (c *Conn) dumpRemote(ctx context.Context, cred Credentials, w io.Writer) error {
	if !dbNameRE.MatchString(cred.Name) {
		return fmt.Errorf("database name %q: not one this import dumps (letters, digits, _ $ -)", cred.Name)
	}
	sess, err := c.ssh.NewSession()
	if err != nil {
		return fmt.Errorf("SSH session for the dump: %w", err)
	}
	defer sess.Close()
	host := cred.Host
	if host == "localhost" && cred.Socket == "" && cred.Port > 0 {
		host = "127.0.0.1"
	}
	sess.Stdin = strings.NewReader(optionFile(cred, host, cred.Port, cred.Socket))
	sess.Stdout = w
	var stderr tailBuffer
	sess.Stderr = &stderr
	cmd := `if command -v mariadb-dump >/dev/null 2>&1; then d=mariadb-dump; elif command -v mysqldump >/dev/null 2>&1; then d=mysqldump; else echo "neither mariadb-dump nor mysqldump is installed" >&2; exit 127; fi; exec "$d" --defaults-extra-file=/dev/stdin ` +
		strings.Join(dumpArgs, " ") + " '" + cred.Name + "'"
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Close()
		<-done
		return ctx.Err()
	}
	if err != nil {
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("the dump on %s failed (exit %d): %s", c.src.Host, ee.ExitStatus(), stderr.String())
		}
		return fmt.Errorf("the dump on %s: %w: %s", c.src.Host, err, stderr.String())
	}
	return nil
}

// dumpTunnelled dumps cred's database with the local mariadb-dump
// through a loopback listener whose connections go through the SSH
// connection (direct-tcpip) to cred's host and port.
func (c *Conn) dumpTunnelled(ctx context.Context, cred Credentials, w io.Writer) error {
	if !dbNameRE.MatchString(cred.Name) {
		return fmt.Errorf("database name %q: not one this import dumps (letters, digits, _ $ -)", cred.Name)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	target := net.JoinHostPort(cred.Host, strconv.Itoa(cred.Port))
	var wg sync.WaitGroup
	var tunnelErr error
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			lc, err := ln.Accept()
			if err != nil {
				return
			}
			rc, err := c.ssh.Dial("tcp", target)
			if err != nil {
				mu.Lock()
				tunnelErr = fmt.Errorf("the SSH server could not reach %s: %w", target, err)
				mu.Unlock()
				lc.Close()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				pipe(lc, rc)
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	cmd := exec.CommandContext(ctx, "mariadb-dump", append(append([]string{"--defaults-extra-file=/dev/stdin", "--protocol=tcp"}, dumpArgs...), "--", cred.Name)...)
	cmd.Stdin = strings.NewReader(optionFile(cred, "127.0.0.1", port, ""))
	cmd.Stdout = w
	var stderr tailBuffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	ln.Close()
	wg.Wait()
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		return errors.Join(fmt.Errorf("dump %s through the SSH tunnel to %s: %w: %s", cred.Name, target, err, stderr.String()), tunnelErr)
	}
	return nil
}

func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.Write(p)
	if t.b.Len() > 4096 {
		rest := t.b.Bytes()[t.b.Len()-4096:]
		t.b = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(t.b.String())
}
