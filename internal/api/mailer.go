package api

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Mail is one message to a user (a password-reset link).
type Mail struct {
	To      string
	Subject string
	Body    string
}

// Mailer delivers mail to users. The platform has no SMTP relay yet:
// LogMailer writes messages to the log and, optionally, to files an
// administrator can hand on.
type Mailer interface {
	Send(ctx context.Context, m Mail) error
}

// LogMailer "delivers" mail into the control plane's log (level info,
// message "mail", with the body, so an administrator can pass the link on)
// and, when Dir is set, as one file per message in Dir.
type LogMailer struct {
	Logger *slog.Logger
	Dir    string
	Clock  func() time.Time
}

// Send implements Mailer.
func (l LogMailer) Send(ctx context.Context, m Mail) error {
	if l.Logger != nil {
		l.Logger.InfoContext(ctx, "mail", "to", m.To, "subject", m.Subject, "body", m.Body)
	}
	if l.Dir == "" {
		return nil
	}
	now := time.Now
	if l.Clock != nil {
		now = l.Clock
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '@' {
			return r
		}
		return '_'
	}, strings.ToLower(m.To))
	f, err := os.CreateTemp(l.Dir, now().UTC().Format("20060102T150405Z")+"-"+safe+"-*.eml")
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	_, err = fmt.Fprintf(f, "To: %s\r\nSubject: %s\r\nDate: %s\r\n\r\n%s\r\n", m.To, m.Subject, now().UTC().Format(time.RFC1123Z), m.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("mail %s: %w", filepath.Base(f.Name()), err)
	}
	return nil
}
