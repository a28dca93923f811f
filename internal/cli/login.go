package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/platform/controlplane"
)

// DefaultAPIURL is the API `aipress login` signs in to when neither --url,
// AIPRESS_URL nor client.json names one.
const DefaultAPIURL = "http://" + DefaultAPIAddr

func dataDir(d deps) string {
	if dir := d.getenv(EnvDataDir); dir != "" {
		return dir
	}
	return DefaultDataDir
}

// loginURL finds the API to sign in to: --url, AIPRESS_URL, client.json's,
// else DefaultAPIURL.
func loginURL(d deps, flag string) string {
	if flag != "" {
		return strings.TrimRight(flag, "/")
	}
	if u := d.getenv(EnvURL); u != "" {
		return strings.TrimRight(u, "/")
	}
	if cfg, err := apiclient.ReadConfig(dataDir(d)); err == nil && cfg.URL != "" {
		return cfg.URL
	}
	return DefaultAPIURL
}

func newLoginCmd(d deps) *cobra.Command {
	var (
		url, email, name, output string
		usePassword              bool
	)
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Sign in to the AIPress API and store an API token for the other commands",
		Long: `Sign in as a user and write the API URL and a new API token to client.json in
the data directory ($AIPRESS_DATA_DIR, default ./aipress-data), where the
other client commands find them.

By default the device flow is used: the command prints a URL and a code;
approve the code while signed in (in the portal, or from a signed-in CLI with
'aipress login approve CODE'), and the command picks up its token. With
--password it asks for the password (from the terminal, or the first line of
standard input) and signs in directly.

The token acts as the user: never with more rights than the user has.`,
		Example: `  aipress login --url https://api.example.com
  aipress login --password --email ann@example.com
  echo "$PASSWORD" | aipress login --password --email ann@example.com -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			base := loginURL(d, url)
			c := apiclient.New(base, "")
			if name == "" {
				host, _ := os.Hostname()
				name = strings.TrimSpace("aipress login " + host)
			}
			var res *apiclient.LoginResponse
			var err error
			if usePassword {
				res, err = passwordLogin(cmd, c, email, name)
			} else {
				res, err = deviceLogin(cmd, c, name)
			}
			if err != nil {
				return err
			}
			if err := apiclient.WriteConfig(dataDir(d), base, res.Token); err != nil {
				return err
			}
			res.Token = "" // written to client.json, not printed
			if output != "table" {
				return printData(cmd.OutOrStdout(), output, res)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "signed in to %s as %s (token %s, expires %s); saved in %s\n",
				base, res.User.Email, res.TokenID, res.ExpiresAt.Format(time.RFC3339), dataDir(d)+"/"+ClientConfigFile)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "", "API base URL (env "+EnvURL+"; default client.json's, else "+DefaultAPIURL+")")
	f.StringVar(&email, "email", "", "your e-mail address (with --password; asked for when missing)")
	f.BoolVar(&usePassword, "password", false, "sign in with e-mail and password instead of the device flow")
	f.StringVar(&name, "name", "", "name of the API token (default \"aipress login <host name>\")")
	f.StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	cmd.AddCommand(newLoginApproveCmd(d))
	return cmd
}

// readLine reads one line from r (without its line end).
func readLine(r *bufio.Reader) (string, error) {
	s, err := r.ReadString('\n')
	if err != nil && (err != io.EOF || s == "") {
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

func passwordLogin(cmd *cobra.Command, c *apiclient.Client, email, name string) (*apiclient.LoginResponse, error) {
	in := cmd.InOrStdin()
	fd := -1
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd = int(f.Fd())
	}
	br := bufio.NewReader(in)
	if email == "" {
		fmt.Fprint(cmd.ErrOrStderr(), "E-mail: ")
		var err error
		if email, err = readLine(br); err != nil {
			return nil, fmt.Errorf("read e-mail: %w", err)
		}
	}
	var pw string
	if fd >= 0 {
		fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		pw = string(b)
	} else {
		var err error
		if pw, err = readLine(br); err != nil {
			return nil, fmt.Errorf("read password from standard input: %w", err)
		}
	}
	if pw == "" {
		return nil, errors.New("no password given")
	}
	return c.Login(cmd.Context(), apiclient.LoginRequest{Email: email, Password: pw, Token: true, Name: name})
}

func deviceLogin(cmd *cobra.Command, c *apiclient.Client, name string) (*apiclient.LoginResponse, error) {
	ctx := cmd.Context()
	dev, err := c.StartDevice(ctx, name)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "To sign in, open %s and enter the code %s\n(or, signed in elsewhere: aipress login approve %s)\nWaiting for approval ...\n",
		dev.VerificationURI, dev.UserCode, dev.UserCode)
	interval := time.Duration(max(dev.Interval, 1)) * time.Second
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(interval):
		}
		res, err := c.PollDevice(ctx, dev.DeviceCode)
		switch {
		case err == nil:
			return res, nil
		case apiclient.HasCode(err, api.CodeAuthorizationPending):
		case apiclient.HasCode(err, api.CodeSlowDown):
			interval += 5 * time.Second
		case apiclient.HasCode(err, api.CodeExpiredToken):
			return nil, errors.New("the code expired before it was approved; run aipress login again")
		default:
			return nil, err
		}
	}
}

func newLoginApproveCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	return clientCmd(&cobra.Command{
		Use:   "approve CODE",
		Short: "Approve another device's 'aipress login' with its code, as the signed-in user",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			if err := c.ApproveDevice(cmd.Context(), args[0]); err != nil {
				return err
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, map[string]string{"approved": args[0]})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "sign-in %s approved\n", args[0])
			return err
		},
	}, o)
}

func newLogoutCmd(d deps) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Sign out: revoke the token in client.json and remove it from there",
		Long: `Revoke the user's API token that client.json holds (POST /v1/auth/logout) and
remove it from client.json (the URL stays, for the next 'aipress login').
Machine tokens (the admin token 'aipress up' writes) are not revoked: delete
those with 'aipress token delete'.`,
		Example: "  aipress logout",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			dir := dataDir(d)
			cfg, err := apiclient.ReadConfig(dir)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("not signed in: no %s/%s", dir, ClientConfigFile)
			}
			if err != nil {
				return err
			}
			if cfg.Token == "" {
				return errors.New("not signed in: client.json holds no token")
			}
			err = apiclient.New(cfg.URL, cfg.Token).Logout(cmd.Context())
			var ae *apiclient.Error
			if err != nil && !(errors.As(err, &ae) && ae.Status == 401) { // 401: already revoked or expired
				return err
			}
			if err := apiclient.WriteConfig(dir, cfg.URL, ""); err != nil {
				return err
			}
			if output != "table" {
				return printData(cmd.OutOrStdout(), output, map[string]string{"signed_out": cfg.URL})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "signed out of %s\n", cfg.URL)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// addAuthFlags adds the sign-in flags of aipress server and up.
func addAuthFlags(cmd *cobra.Command, o *controlplane.AuthOptions) {
	fl := cmd.Flags()
	fl.BoolVar(&o.OpenSignup, "open-signup", false, "let anyone create a user and an organisation (POST /v1/auth/signup)")
	fl.BoolVar(&o.OIDCSignup, "oidc-signup", false, "with --open-signup: OIDC identities without an account get one")
	fl.StringVar(&o.OIDCIssuer, "oidc-issuer", "", "OpenID Connect provider's issuer URL for signing in (empty: no OIDC)")
	fl.StringVar(&o.OIDCClientID, "oidc-client-id", "", "this platform's OIDC client ID at the provider")
	fl.StringVar(&o.OIDCClientSecretFile, "oidc-client-secret-file", "", "file holding the OIDC client secret")
	fl.StringVar(&o.OIDCRedirectURL, "oidc-redirect-url", "", "the OIDC callback registered at the provider: <API URL>/v1/auth/oidc/callback")
	fl.StringVar(&o.BaseURL, "auth-base-url", "", "where users reach the platform, for password-reset links and the device sign-in (default: the request's host)")
	fl.StringVar(&o.MailDir, "mail-dir", "", "directory password-reset mails are written to as files (default <data-dir>/mail; they are also logged)")
}
