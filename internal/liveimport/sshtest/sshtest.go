// Package sshtest is an SSH server for tests of live imports: password
// and public-key authentication, the SFTP subsystem (pkg/sftp's server,
// over the whole file system as a real server's is), exec channels run
// with sh -c on this machine (so a mysqldump sent by the client runs the
// real one), and direct-tcpip channels (port forwarding). Not for
// production: it runs what its clients ask.
package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Config is the server's users.
type Config struct {
	User, Password string
	// AuthorizedKey, if set, is accepted for User.
	AuthorizedKey ssh.PublicKey
	// Exec, if set, is asked before a command runs; an error refuses it
	// (exit status 126 and the error on stderr).
	Exec func(cmd string) error
	// Handler, if set, runs exec requests instead of sh -c (a benchmark
	// serving a generated dump without a database, say) and returns the
	// exit status.
	Handler func(cmd string, stdin io.Reader, stdout, stderr io.Writer) int
}

// Server is a running test SSH server.
type Server struct {
	Addr    string
	HostKey ssh.PublicKey
	ln      net.Listener
	cfg     *ssh.ServerConfig
	conf    Config
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
	closed  bool
}

// Start listens on a loopback port with a fresh ed25519 host key.
func Start(c Config) (*Server, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	s := &Server{HostKey: signer.PublicKey(), conf: c}
	s.cfg = &ssh.ServerConfig{
		PasswordCallback: func(m ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if m.User() == c.User && c.Password != "" && string(pw) == c.Password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		},
		PublicKeyCallback: func(m ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if m.User() == c.User && c.AuthorizedKey != nil && string(k.Marshal()) == string(c.AuthorizedKey.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorised")
		},
	}
	s.cfg.AddHostKey(signer)
	if s.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	s.Addr = s.ln.Addr().String()
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// SetExec replaces Config.Exec.
func (s *Server) SetExec(fn func(cmd string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conf.Exec = fn
}

// Port is the port the server listens on.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Close stops the server and ends its connections.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns = append(s.conns, nc)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(nc)
		}()
	}
}

func (s *Server) handle(nc net.Conn) {
	defer nc.Close()
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nch := range chans {
		switch nch.ChannelType() {
		case "session":
			ch, creqs, err := nch.Accept()
			if err != nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.session(ch, creqs)
			}()
		case "direct-tcpip":
			var p struct {
				Host     string
				Port     uint32
				OrigHost string
				OrigPort uint32
			}
			if err := ssh.Unmarshal(nch.ExtraData(), &p); err != nil {
				nch.Reject(ssh.ConnectionFailed, "bad request")
				continue
			}
			tc, err := net.Dial("tcp", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
			if err != nil {
				nch.Reject(ssh.ConnectionFailed, err.Error())
				continue
			}
			ch, creqs, err := nch.Accept()
			if err != nil {
				tc.Close()
				continue
			}
			go ssh.DiscardRequests(creqs)
			wg.Add(1)
			go func() {
				defer wg.Done()
				done := make(chan struct{}, 2)
				go func() { io.Copy(ch, tc); ch.CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(tc, ch); tc.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
				ch.Close()
				tc.Close()
			}()
		default:
			nch.Reject(ssh.UnknownChannelType, "not served")
		}
	}
}

func (s *Server) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "subsystem":
			var p struct{ Name string }
			if ssh.Unmarshal(req.Payload, &p) != nil || p.Name != "sftp" {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			srv, err := sftp.NewServer(ch)
			if err != nil {
				return
			}
			_ = srv.Serve()
			return
		case "exec":
			var p struct{ Command string }
			if ssh.Unmarshal(req.Payload, &p) != nil {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			status := s.exec(ch, p.Command)
			b := make([]byte, 4)
			binary.BigEndian.PutUint32(b, uint32(status))
			ch.SendRequest("exit-status", false, b)
			return
		default:
			req.Reply(req.Type == "env", nil)
		}
	}
}

func (s *Server) exec(ch ssh.Channel, command string) int {
	s.mu.Lock()
	check := s.conf.Exec
	s.mu.Unlock()
	if check != nil {
		if err := check(command); err != nil {
			fmt.Fprintf(ch.Stderr(), "refused: %v\n", err)
			return 126
		}
	}
	if s.conf.Handler != nil {
		return s.conf.Handler(command, ch, ch, ch.Stderr())
	}
	cmd := exec.Command("sh", "-c", command)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(ch.Stderr(), "%v\n", err)
		return 127
	}
	return 0
}
