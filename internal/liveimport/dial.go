package liveimport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrHostKey is a server whose host key is not the one expected;
// ErrAuth one that refused the credentials.
var (
	ErrHostKey = errors.New("host key verification failed")
	ErrAuth    = errors.New("SSH authentication failed")
)

// Source is where a live site is: user@host[:port]:/path/to/docroot.
type Source struct {
	User, Host string
	Port       int
	// Path is the docroot on the server.
	Path string
}

// String is the source as ParseSource reads it.
func (s Source) String() string {
	return fmt.Sprintf("%s@%s:%s", s.User, net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), s.Path)
}

// ParseSource reads user@host[:port]:/path (port 22 by default; an IPv6
// host in brackets). The path must be absolute.
func ParseSource(s string) (Source, error) {
	bad := func(why string) (Source, error) {
		return Source{}, fmt.Errorf("SSH source %q: %s (want user@host[:port]:/path/to/docroot)", s, why)
	}
	at := strings.Index(s, "@")
	if at <= 0 {
		return bad("no user")
	}
	src := Source{User: s[:at], Port: 22}
	rest := s[at+1:]
	i := strings.Index(rest, ":/")
	if i < 0 {
		return bad("no absolute path")
	}
	hostport, p := rest[:i], rest[i+1:]
	if h, port, err := net.SplitHostPort(hostport); err == nil {
		n, err := strconv.Atoi(port)
		if err != nil || n <= 0 || n > 65535 {
			return bad("bad port")
		}
		src.Host, src.Port = h, n
	} else {
		src.Host = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
	}
	if src.Host == "" {
		return bad("no host")
	}
	src.Path = path.Clean(p)
	return src, nil
}

// Config is how to reach and trust the server.
type Config struct {
	// Signer (a private key) and Password are tried in that order; at
	// least one is needed.
	Signer   ssh.Signer
	Password string
	// HostKey verifies the server's key (HostKeyFromKnownHosts,
	// HostKeyFingerprint). Required.
	HostKey ssh.HostKeyCallback
	// Timeout bounds the TCP connect and SSH handshake (default 30s).
	Timeout time.Duration
}

// LoadKey reads a private key file (OpenSSH, PEM); passphrase is used
// if the key is encrypted.
func LoadKey(file string, passphrase []byte) (ssh.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("SSH key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("SSH key %s is encrypted: give its passphrase", file)
		}
		s, err = ssh.ParsePrivateKeyWithPassphrase(b, passphrase)
	}
	if err != nil {
		return nil, fmt.Errorf("SSH key %s: %w", file, err)
	}
	return s, nil
}

// HostKeyFromKnownHosts verifies against an OpenSSH known_hosts file.
func HostKeyFromKnownHosts(file string) (ssh.HostKeyCallback, error) {
	cb, err := knownhosts.New(file)
	if err != nil {
		return nil, fmt.Errorf("known hosts %s: %w", file, err)
	}
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(host, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			if len(ke.Want) == 0 {
				return fmt.Errorf("%w: %s is not in %s (its %s key is %s)", ErrHostKey, host, file, key.Type(), ssh.FingerprintSHA256(key))
			}
			return fmt.Errorf("%w: %s offered %s key %s, which is not the one %s has for it: possible man-in-the-middle", ErrHostKey, host, key.Type(), ssh.FingerprintSHA256(key), file)
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrHostKey, err)
		}
		return nil
	}, nil
}

// HostKeyFingerprint accepts only the key whose SHA256 fingerprint
// (as ssh-keygen -lf prints it: "SHA256:…") is fp.
func HostKeyFingerprint(fp string) (ssh.HostKeyCallback, error) {
	if !strings.HasPrefix(fp, "SHA256:") || len(fp) < 20 {
		return nil, fmt.Errorf("host key fingerprint %q: want SHA256:… (ssh-keygen -lf the server's key)", fp)
	}
	return func(host string, _ net.Addr, key ssh.PublicKey) error {
		if got := ssh.FingerprintSHA256(key); got != fp {
			return fmt.Errorf("%w: %s offered %s key %s, not %s: possible man-in-the-middle", ErrHostKey, host, key.Type(), got, fp)
		}
		return nil
	}, nil
}

// Conn is an SSH connection with its SFTP session, rooted at the
// source's docroot.
type Conn struct {
	src  Source
	ssh  *ssh.Client
	sftp *sftp.Client
	// root is the docroot as the server resolves it.
	root string
}

// Dial connects, authenticates and opens SFTP; the docroot must exist.
func Dial(ctx context.Context, src Source, cfg Config) (*Conn, error) {
	if cfg.HostKey == nil {
		return nil, errors.New("no way to verify the server's host key: give a known_hosts file or the key's SHA256 fingerprint")
	}
	var auth []ssh.AuthMethod
	if cfg.Signer != nil {
		auth = append(auth, ssh.PublicKeys(cfg.Signer))
	}
	if cfg.Password != "" {
		auth = append(auth, ssh.Password(cfg.Password))
	}
	if len(auth) == 0 {
		return nil, errors.New("no SSH credentials: give a key or a password")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	addr := net.JoinHostPort(src.Host, strconv.Itoa(src.Port))
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	cc, chans, reqs, err := ssh.NewClientConn(nc, addr, &ssh.ClientConfig{User: src.User, Auth: auth, HostKeyCallback: cfg.HostKey, Timeout: timeout})
	if err != nil {
		nc.Close()
		if errors.Is(err, ErrHostKey) {
			return nil, fmt.Errorf("SSH to %s: %w", addr, err)
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("SSH to %s as %s: %w: the server refused the key or password", addr, src.User, ErrAuth)
		}
		return nil, fmt.Errorf("SSH to %s: %w", addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	c := &Conn{src: src, ssh: ssh.NewClient(cc, chans, reqs)}
	if c.sftp, err = sftp.NewClient(c.ssh); err != nil {
		c.ssh.Close()
		return nil, fmt.Errorf("SFTP on %s: %w", addr, err)
	}
	if c.root, err = c.resolve(src.Path); err == nil {
		var fi os.FileInfo
		if fi, err = c.sftp.Stat(c.root); err == nil && !fi.IsDir() {
			err = errors.New("not a directory")
		}
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("docroot %s on %s: %w", src.Path, addr, err)
	}
	return c, nil
}

// Root is the docroot as the server resolves it.
func (c *Conn) Root() string { return c.root }

// Close ends the SFTP session and the connection.
func (c *Conn) Close() error {
	return errors.Join(c.sftp.Close(), c.ssh.Close())
}
