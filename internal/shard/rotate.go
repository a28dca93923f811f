package shard

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/phpini"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/wordpress"
)

// Secret rotation of one site (store.JobRotateSecret).
//
// MariaDB 10.11 has no second password for one account, so a site has two
// accounts with the same grants and connection limit, n.DBUser and
// n.DBUser+"_b", and a DB password rotation alternates between them:
//
//  1. prepared: a new password for the account not in use is recorded in
//     secrets.json (DBRotation), then the account is created or reset with
//     it (EnsureDatabase: grants and MAX_USER_CONNECTIONS as the live one).
//  2. switched: secrets.json names the new account and password, and
//     wp-config.php is rewritten (atomically, with a modification time in a
//     later second than the old one's, so OPcache sees it within
//     phpini.RevalidateFreq). Both accounts work now.
//  3. The old account stays until every request that may have read the old
//     wp-config.php has connected and ended: OPcache's revalidation period
//     and Config.RotationDrain after the switch, then until the old account
//     has no session left (bounded by the site's request timeout, after
//     which php-fpm has ended any request older than the switch).
//  4. The old account is dropped, then DBRotation is cleared.
//
// Each step is recorded before the next starts, so a rotation interrupted
// anywhere (a crash, a failed statement) is finished by running it again:
// the job runner reruns a job whose shard died, and a new rotation request
// resumes one that failed instead of starting another. Convergence never
// writes wp-config.php with the secrets of a step that rotation has since
// replaced (secretsLock), and a rotation excludes an in-place restore of
// the same site (lockSite).
//
// During the overlap the site may hold up to twice its connection limit,
// one limit per account.

// dbRotation is a DB password rotation in flight (secrets.json).
type dbRotation struct {
	Step string `json:"step"` // rotPrepared or rotSwitched
	// Slot and Password are the new account's.
	Slot     string `json:"slot"`
	Password string `json:"password"`
	// OldSlot is the account in use before the switch and OldPassword
	// its password (set when switched): the pooler keeps accepting it
	// until it is dropped.
	OldSlot     string    `json:"old_slot,omitempty"`
	OldPassword string    `json:"old_password,omitempty"`
	SwitchedAt  time.Time `json:"switched_at,omitzero"`
}

const (
	rotPrepared = "prepared"
	rotSwitched = "switched"
)

// DefaultRotationDrain is Config.RotationDrain's default.
const DefaultRotationDrain = 3 * time.Second

// dbUserFor is the name of a site's database account in slot ("" or "b").
func dbUserFor(n Names, slot string) string {
	if slot == "" {
		return n.DBUser
	}
	return n.DBUser + "_" + slot
}

func otherSlot(slot string) string {
	if slot == "" {
		return "b"
	}
	return ""
}

// siteDBUsers are both database account names of a site.
func siteDBUsers(n Names) []string { return n.DBUsers() }

// secretsLock serialises reading a site's secrets.json and writing what
// follows from it (its database account, wp-config.php) between
// convergence and rotation.
func (s *Shard) secretsLock(id string) func() {
	s.mu.Lock()
	if s.secMu == nil {
		s.secMu = map[string]*sync.Mutex{}
	}
	m := s.secMu[id]
	if m == nil {
		m = &sync.Mutex{}
		s.secMu[id] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// SecretsState is what secrets status reports of a site on this shard.
type SecretsState struct {
	DBUser string `json:"db_user"`
	// Rotation is the step of a DB password rotation in flight ("" none).
	Rotation string `json:"rotation,omitempty"`
}

// SiteSecretsState reads the secrets state of the site with uid (tests
// and status).
func (s *Shard) SiteSecretsState(uid string) (SecretsState, error) {
	n := s.NamesFor(uid)
	sec, err := readSecretsFile(n.Dir)
	if err != nil {
		return SecretsState{}, err
	}
	out := SecretsState{DBUser: sec.dbUser(n)}
	if sec.DBRotation != nil {
		out.Rotation = sec.DBRotation.Step
	}
	return out, nil
}

// RotateSecret rotates kind (store.SecretDBPassword or store.SecretSalts)
// of site st, which this shard serves.
func (s *Shard) RotateSecret(ctx context.Context, st *site.Site, kind string, progress func(done, total int64)) (*store.RotateResult, error) {
	if progress == nil {
		progress = func(int64, int64) {}
	}
	if st.Status.Shard != s.cfg.Name || st.Move != nil {
		return nil, publicf("site %s is moving or not served by shard %s; rotate its secrets when the move is over", st.Metadata.Name, s.cfg.Name)
	}
	if st.Status.Phase != site.PhaseReady && st.Status.Phase != site.PhaseSuspended {
		return nil, publicf("site %s is %s; only a Ready or Suspended site's secrets are rotated", st.Metadata.Name, st.Status.Phase)
	}
	start := s.cfg.Clock()
	n := s.NamesFor(st.Metadata.UID)
	unlock, err := s.lockSite(ctx, n.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &store.RotateResult{Kind: kind}
	switch kind {
	case store.SecretSalts:
		err = s.rotateSalts(ctx, st, n)
	case store.SecretDBPassword:
		res.DBUser, err = s.rotateDBPassword(ctx, st, n, progress)
	default:
		return nil, publicf("unknown secret kind %q (want %s or %s)", kind, store.SecretDBPassword, store.SecretSalts)
	}
	if err != nil {
		return nil, err
	}
	res.Seconds = s.cfg.Clock().Sub(start).Seconds()
	return res, nil
}

// rotateSalts gives the site new WordPress salts: every logged-in user
// of the site is logged out.
func (s *Shard) rotateSalts(ctx context.Context, st *site.Site, n Names) error {
	release := s.secretsLock(n.ID)
	defer release()
	sec, err := readSecretsFile(n.Dir)
	if err != nil {
		return err
	}
	sec.Salts = wordpress.NewSalts()
	if err := writeSecrets(n.Dir, sec); err != nil {
		return err
	}
	_, err = s.writeSiteConfig(ctx, st, n, sec)
	return err
}

// rotateDBPassword runs (or resumes) a DB password rotation; it returns
// the account in use after it.
func (s *Shard) rotateDBPassword(ctx context.Context, st *site.Site, n Names, progress func(done, total int64)) (string, error) {
	const steps = 4
	release := s.secretsLock(n.ID)
	locked := true
	defer func() {
		if locked {
			release()
		}
	}()
	sec, err := readSecretsFile(n.Dir)
	if err != nil {
		return "", err
	}
	if sec.DBRotation == nil {
		sec.DBRotation = &dbRotation{Step: rotPrepared, Slot: otherSlot(sec.DBSlot), Password: newDBPassword()}
		if err := writeSecrets(n.Dir, sec); err != nil {
			return "", err
		}
	}
	r := sec.DBRotation
	log := s.siteLog(st).With("db_user", dbUserFor(n, r.Slot))
	progress(1, steps)
	if r.Step == rotPrepared {
		if err := s.db.EnsureDatabase(ctx, n.DB, dbUserFor(n, r.Slot), r.Password, st.Spec.Limits.WithDefaults().DBConnections); err != nil {
			return "", failed("creating the new database account", err)
		}
		s.syncPooler() // the pooler accepts the new account before wp-config.php names it
		if err := s.crashPoint("rotate-created"); err != nil {
			return "", err
		}
		r.OldSlot, r.OldPassword = sec.DBSlot, sec.DBPassword
		sec.DBSlot, sec.DBPassword = r.Slot, r.Password
		r.Step, r.SwitchedAt = rotSwitched, s.cfg.Clock().UTC()
		if err := writeSecrets(n.Dir, sec); err != nil {
			return "", err
		}
		if err := s.crashPoint("rotate-switching"); err != nil {
			return "", err // secrets.json switched, wp-config.php not yet
		}
	}
	// Switched (now or by an earlier attempt): wp-config.php names the new
	// account. If this write changed it, the earlier attempt crashed before
	// its write: the overlap counts from now.
	s.syncPooler()
	changed, err := s.writeSiteConfig(ctx, st, n, sec)
	if err != nil {
		return "", err
	}
	if changed {
		r.SwitchedAt = s.cfg.Clock().UTC()
		if err := writeSecrets(n.Dir, sec); err != nil {
			return "", err
		}
	}
	oldUser := dbUserFor(n, r.OldSlot)
	if oldUser == dbUserFor(n, r.Slot) {
		return "", fmt.Errorf("rotation state names one account twice (%s)", oldUser)
	}
	release()
	locked = false
	progress(2, steps)
	log.Info("database password rotation switched; draining the old account", "old_db_user", oldUser)

	// Drain: requests that read the old configuration connect within the
	// OPcache revalidation period and the drain; then the old account's
	// sessions end with their requests.
	if err := sleepUntil(ctx, s.cfg.Clock, r.SwitchedAt.Add(phpini.RevalidateFreq+s.cfg.RotationDrain)); err != nil {
		return "", err
	}
	timeout := time.Duration(st.Spec.PHP.RequestTimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = site.DefaultRequestTimeoutSeconds * time.Second
	}
	deadline := r.SwitchedAt.Add(phpini.RevalidateFreq + s.cfg.RotationDrain + timeout)
	for {
		// Client sessions: the pooler's when it runs (its backend
		// connections idle on beyond the requests that used them).
		open, err := s.clientSessions(ctx, oldUser)
		if err != nil {
			return "", failed("checking the old database account's sessions", err)
		}
		if open == 0 {
			break
		}
		if !s.cfg.Clock().Before(deadline) {
			log.Warn("old database account still has sessions after the request timeout; dropping it", "sessions", open)
			break
		}
		if err := sleepUntil(ctx, s.cfg.Clock, s.cfg.Clock().Add(200*time.Millisecond)); err != nil {
			return "", err
		}
	}
	progress(3, steps)

	release = s.secretsLock(n.ID)
	locked = true
	if err := s.db.DropUser(ctx, oldUser); err != nil {
		return "", failed("dropping the old database account", err)
	}
	s.resetPooled(oldUser)
	if err := s.crashPoint("rotate-dropped"); err != nil {
		return "", err
	}
	sec, err = readSecretsFile(n.Dir)
	if err != nil {
		return "", err
	}
	sec.DBRotation = nil
	if err := writeSecrets(n.Dir, sec); err != nil {
		return "", err
	}
	s.syncPooler()
	progress(4, steps)
	return sec.dbUser(n), nil
}

// writeSiteConfig rewrites the site's wp-config.php from sec (and its
// files as convergence would); changed says whether wp-config.php changed.
func (s *Shard) writeSiteConfig(ctx context.Context, st *site.Site, n Names, sec *secrets) (changed bool, err error) {
	path := filepath.Join(n.Docroot, "wp-config.php")
	before, _ := os.ReadFile(path)
	uid, gid, err := s.ensureSiteUser(ctx, n)
	if err != nil {
		return false, failed("writing wp-config.php", err)
	}
	if err := s.ensureFiles(ctx, st, n, sec, uid, gid); err != nil {
		return false, failed("writing wp-config.php", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("read wp-config.php: %w", err)
	}
	if !strings.Contains(string(after), "'"+sec.dbUser(n)+"'") {
		return false, fmt.Errorf("wp-config.php does not name database account %s after the rewrite", sec.dbUser(n))
	}
	return string(before) != string(after), nil
}

// readSecretsFile reads an existing site's secrets.json (unlike
// loadOrCreateSecrets, a missing or damaged one is an error, not a reason
// to make new secrets).
func readSecretsFile(dir string) (*secrets, error) {
	b, err := os.ReadFile(filepath.Join(dir, "secrets.json"))
	if err != nil {
		return nil, fmt.Errorf("site secrets: %w", err)
	}
	var sec secrets
	if err := json.Unmarshal(b, &sec); err != nil || sec.DBPassword == "" {
		return nil, fmt.Errorf("site secrets: %s is damaged", filepath.Join(dir, "secrets.json"))
	}
	return &sec, nil
}

// sleepUntil waits until clock says t (polling, so a test's clock may
// jump) or ctx ends.
func sleepUntil(ctx context.Context, clock func() time.Time, t time.Time) error {
	for {
		d := t.Sub(clock())
		if d <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(d, 100*time.Millisecond)):
		}
	}
}

// existingDBUsers are the site's database accounts that exist (one, or
// two while a rotation is in flight).
func (s *Shard) existingDBUsers(ctx context.Context, n Names) ([]string, error) {
	var out []string
	for _, u := range siteDBUsers(n) {
		ok, err := s.db.UserExists(ctx, u)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, u)
		}
	}
	return out, nil
}

// freezeWrites freezes the writes of every account of the site (a move).
func (s *Shard) freezeWrites(ctx context.Context, n Names) error {
	users, err := s.existingDBUsers(ctx, n)
	if err != nil {
		return err
	}
	for _, u := range users {
		if err := s.db.FreezeWrites(ctx, n.DB, u); err != nil {
			return err
		}
		s.resetPooled(u)
	}
	return nil
}

// unfreezeWrites undoes freezeWrites.
func (s *Shard) unfreezeWrites(ctx context.Context, n Names) error {
	users, err := s.existingDBUsers(ctx, n)
	if err != nil {
		return err
	}
	for _, u := range users {
		if err := s.db.UnfreezeWrites(ctx, n.DB, u); err != nil {
			return err
		}
		// Pooled connections opened while frozen would keep lacking the
		// write privileges until their next USE.
		s.resetPooled(u)
	}
	return nil
}

// writesFrozen reports whether every account of the site has its writes
// frozen (false when it has none).
func (s *Shard) writesFrozen(ctx context.Context, n Names) (bool, error) {
	users, err := s.existingDBUsers(ctx, n)
	if err != nil || len(users) == 0 {
		return false, err
	}
	for _, u := range users {
		frozen, err := s.db.WritesFrozen(ctx, n.DB, u)
		if err != nil || !frozen {
			return false, err
		}
	}
	return true, nil
}

// dropSiteDatabase removes the site's database and both its accounts
// (idempotent).
func (s *Shard) dropSiteDatabase(ctx context.Context, n Names) error {
	if err := s.db.DropDatabase(ctx, n.DB, dbUserFor(n, "")); err != nil {
		return err
	}
	s.resetPooled(dbUserFor(n, ""))
	if err := s.db.DropUser(ctx, dbUserFor(n, "b")); err != nil {
		return err
	}
	s.resetPooled(dbUserFor(n, "b"))
	return nil
}
