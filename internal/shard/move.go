package shard

// Moving a site between shards: the shards' side.
//
// The control plane starts a move by setting Site.Move{ID, Source, Target,
// Phase: Exporting}; from then until the move is Done or Aborted both
// shards list the site (site.Site.Shards) and reconcileMove, not the normal
// convergence, decides what each does with it. Each step is idempotent and
// is retried on the next pass when it fails (its error goes to Move.Error);
// the shards report through Sites.UpdateMove, and the control plane
// advances the phase (site.AdvanceMove).
//
//	phase       source (Status.Shard)              target
//	Copying     export while serving (not           once exported: import
//	            frozen; precopy.json, with the      it all (as in Importing;
//	            DB clock and table definitions),    marker precopied.<id>),
//	            PreArtifact + PreExported           freeze its writes, warm
//	                                                the pool up with a GET,
//	                                                PreImported
//	Exporting   freeze writes (revoke the DB        —
//	            user's write grants, end its
//	            sessions, no cron), FreezeStarted;
//	            export to the transfer store
//	            (manifest signed with the move
//	            key; after a pre-copy only the
//	            tables changed since: finalDelta),
//	            Artifact + Exported
//	Importing   stays frozen                        import: the export
//	                                                checked first (the move
//	                                                key's MAC, every
//	                                                object's SHA-256); own
//	                                                user, dir, database and
//	                                                password, dump loaded
//	                                                (sandboxed), files with
//	                                                its own owners, salts
//	                                                kept, wp-config, the
//	                                                installed marker, pool;
//	                                                over a pre-copy only the
//	                                                tables and files
//	                                                (importOverPrecopy);
//	                                                Imported, TargetEndpoint,
//	                                                TargetDocroot
//	  — the control plane switches Status to the target (same write) —
//	CleaningUp  tears its copy down (as delete,      converges normally: it
//	            without Finalize), deletes the       is Status.Shard now and
//	            transfer objects, CleanedUp          the site is installed
//	Aborting    unfreezes (grants back), deletes    tears its copy down,
//	            the transfer objects, Unfrozen      CleanedUp
//
// The source's copy goes only after the switch, so no step loses data. The
// target never writes Status before the switch; a shard that is neither
// Status.Shard nor part of an active move leaves the site alone. The target
// records a finished import in a root-owned marker in the site directory
// keyed by the move ID; without it an import starts from scratch (pool,
// database and directory dropped and made again).
//
// The source deletes the transfer objects, after its cleanup (or on abort,
// after unfreezing), before it reports: the move stays listed for it until
// the objects are gone. A target still reading them then (only possible on
// abort) fails and tears down anyway.

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"gocloud.dev/blob"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/wordpress"
)

// reconcileMove handles st when a move involves this shard or another shard
// holds it, and reports whether it did (then the normal convergence must
// not run).
func (s *Shard) reconcileMove(ctx context.Context, src Sites, st *site.Site) (bool, error) {
	me := s.cfg.Name
	owner := st.Status.Shard == me
	m := st.Move
	if !m.Active() {
		return !owner, nil
	}
	var err error
	switch {
	case m.Source == me && owner: // before the switch
		if st.Metadata.DeletionRequested != nil {
			return false, nil // the owner deletes as usual
		}
		switch m.Phase {
		case site.MoveCopying:
			err = s.movePreExport(ctx, src, st)
		case site.MoveExporting, site.MoveImporting:
			err = s.moveExport(ctx, src, st)
		case site.MoveAborting:
			err = s.moveUnfreeze(ctx, src, st)
		}
	case m.Source == me: // after the switch
		if m.Phase == site.MoveCleaningUp && m.CleanedUp == nil {
			err = s.moveCleanUpSource(ctx, src, st)
		}
	case m.Target == me && !owner: // before the switch
		switch {
		case m.Phase == site.MoveAborting || st.Metadata.DeletionRequested != nil:
			err = s.moveRemoveTarget(ctx, src, st)
		case m.Phase == site.MoveCopying && m.PreExported != nil:
			err = s.movePreImport(ctx, src, st)
		case m.Phase == site.MoveImporting && m.Exported != nil:
			err = s.moveImport(ctx, src, st)
		}
	case owner: // the target after the switch
		return false, nil
	}
	if errors.Is(err, errSiteBusy) {
		return true, nil
	}
	if err != nil && ctx.Err() == nil {
		s.reportMoveError(ctx, src, st, err)
	}
	return true, err
}

// reportMoveError records err as the move's error (retried next pass).
func (s *Shard) reportMoveError(ctx context.Context, src Sites, st *site.Site, err error) {
	log := s.log.With("site", st.Metadata.Name, "move", st.Move.ID, "phase", st.Move.Phase)
	msg := s.cfg.Name + ": " + s.publicMessage(log, "moving the site ("+string(st.Move.Phase)+")", err)
	if st.Move.Error == msg {
		return
	}
	if uerr := src.UpdateMove(ctx, st.Metadata.Name, st.Metadata.UID, func(m *site.Move) { m.Error = msg }); uerr != nil {
		s.log.Warn("report move error", "site", st.Metadata.Name, "err", uerr)
	}
}

// updateMove applies fn to st's move through src.
func (s *Shard) updateMove(ctx context.Context, src Sites, st *site.Site, fn func(*site.Move)) error {
	id := st.Move.ID
	return src.UpdateMove(ctx, st.Metadata.Name, st.Metadata.UID, func(m *site.Move) {
		if m.ID != id {
			return // another move replaced this one meanwhile
		}
		fn(m)
	})
}

// moveExport is the source's step while the move is Exporting or
// Importing: keep the site's writes frozen, and export it once.
func (s *Shard) moveExport(ctx context.Context, src Sites, st *site.Site) error {
	m := st.Move
	n := s.NamesFor(st.Metadata.UID)
	if m.ID == "" {
		return errors.New("move has no ID")
	}
	// Not while a job (a code job) changes the site; one a crash
	// interrupted is rolled back before the site is frozen and exported.
	unlock, ok := s.tryHoldSite(n.ID, false)
	if !ok {
		return errSiteBusy
	}
	defer unlock()
	if fileExists(codeMarker(n)) {
		if err := s.recoverCode(ctx, st, n); err != nil {
			return fmt.Errorf("rolling back an interrupted code job: %w", err)
		}
	}
	frozen, err := s.writesFrozen(ctx, n)
	if err != nil {
		return err
	}
	// In Exporting the freeze is made again every pass (it also ends
	// sessions that began before it); later only when it was lost.
	if !frozen || m.Exported == nil {
		if err := s.freezeWrites(ctx, n); err != nil {
			return err
		}
	}
	if m.FreezeStarted == nil {
		now := s.cfg.Clock().UTC()
		if err := s.updateMove(ctx, src, st, func(m *site.Move) {
			if m.FreezeStarted == nil {
				m.FreezeStarted = &now
			}
		}); err != nil {
			return fmt.Errorf("report freeze: %w", err)
		}
		s.log.Info("site frozen for its move", "site", st.Metadata.Name, "move", m.ID, "target", m.Target)
	}
	if m.Exported != nil {
		return nil
	}
	artifact, err := s.export(ctx, st, n, finalManifest)
	if err != nil {
		return err
	}
	now := s.cfg.Clock().UTC()
	if err := s.updateMove(ctx, src, st, func(m *site.Move) {
		m.Artifact = artifact
		if m.Exported == nil {
			m.Exported = &now
		}
		m.Error = ""
	}); err != nil {
		return fmt.Errorf("report export: %w", err)
	}
	s.log.Info("site exported", "site", st.Metadata.Name, "move", m.ID, "artifact", artifact)
	return nil
}

// The manifests of a move's two exports, under its transfer prefix: the
// pre-copy's (made while the site serves) and the final one's (frozen).
const (
	preManifest   = "precopy.json"
	finalManifest = "manifest.json"
)

// export writes st's export for its move to the transfer store under
// manifest name manifestName and returns the manifest's key. A complete
// export of the same move under that name is reused; a partial one, or
// anything else under the move's prefix (the pre-copy's objects, when the
// final export is made), is deleted first.
func (s *Shard) export(ctx context.Context, st *site.Site, n Names, manifestName string) (string, error) {
	m := st.Move
	key, err := s.moveKey(ctx, st)
	if err != nil {
		return "", err
	}
	b, err := s.openTransfer(ctx)
	if err != nil {
		return "", err
	}
	defer b.Close()
	prefix := transferPrefix(st.Metadata.UID, m.ID)
	manifestKey := prefix + manifestName
	if old, err := readManifest(ctx, b, manifestKey, key); err == nil && old != nil && old.MoveID == m.ID && old.complete(ctx, b) {
		return manifestKey, nil
	}
	// The final export after a pre-copy sends only the tables changed
	// since (read before the pre-copy's objects go, below).
	var delta *dbDelta
	if manifestName == finalManifest {
		delta = s.finalDelta(ctx, b, prefix, key, n)
	}
	// Partial (or damaged): start again from nothing.
	if err := deletePrefix(ctx, b, prefix); err != nil {
		return "", err
	}
	sec, err := loadOrCreateSecrets(n.Dir)
	if err != nil {
		return "", err
	}
	attempt := prefix + wordpress.RandomString(12, "abcdefghijklmnopqrstuvwxyz0123456789") + "/"
	man := manifest{Version: manifestVersion, SiteUID: st.Metadata.UID, MoveID: m.ID, Source: s.cfg.Name, Created: s.cfg.Clock().UTC(),
		CoreVersion: s.siteCoreVersion(n)}
	var dumpTables []string // nil: all
	switch {
	case manifestName == preManifest:
		// The clock first: whatever commits after it is sent again.
		if since, err := s.db.Now(ctx); err == nil {
			if schemas, err := s.db.TableSchemas(ctx, n.DB); err == nil {
				man.DBSince, man.Schemas = since, schemas
			}
		}
	case delta != nil:
		man.Delta, man.Tables, dumpTables = true, delta.all, delta.changed
	}
	steps := []struct {
		name string
		fn   func(io.Writer) error
	}{
		{objDatabase, func(w io.Writer) error {
			return gzipTo(w, func(w io.Writer) error { return s.db.DumpTables(ctx, n.DB, dumpTables, w) })
		}},
		{objFiles, func(w io.Writer) error {
			return gzipTo(w, func(w io.Writer) error { return tarTree(filepath.Join(n.Docroot, "wp-content"), w) })
		}},
		{objSecrets, func(w io.Writer) error {
			salts, err := json.Marshal(sec.Salts)
			if err != nil {
				return err
			}
			return json.NewEncoder(w).Encode(exportedSecrets{Salts: salts})
		}},
	}
	for _, step := range steps {
		o, err := writeObject(ctx, b, step.name, attempt+step.name, step.fn)
		if err != nil {
			return "", err
		}
		man.Objects = append(man.Objects, o)
	}
	data, err := signManifest(&man, key)
	if err != nil {
		return "", err
	}
	// The manifest commits the export.
	if _, err := writeObject(ctx, b, "manifest.json", manifestKey, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		return "", err
	}
	return manifestKey, nil
}

// movePreExport is the source's step while the move is Copying: export
// the site once while it serves (not frozen), for the target's pre-copy.
func (s *Shard) movePreExport(ctx context.Context, src Sites, st *site.Site) error {
	m := st.Move
	if m.PreExported != nil {
		return nil
	}
	n := s.NamesFor(st.Metadata.UID)
	if m.ID == "" {
		return errors.New("move has no ID")
	}
	unlock, ok := s.tryHoldSite(n.ID, false)
	if !ok {
		return errSiteBusy
	}
	defer unlock()
	if fileExists(codeMarker(n)) {
		if err := s.recoverCode(ctx, st, n); err != nil {
			return fmt.Errorf("rolling back an interrupted code job: %w", err)
		}
	}
	artifact, err := s.export(ctx, st, n, preManifest)
	if err != nil {
		return err
	}
	now := s.cfg.Clock().UTC()
	if err := s.updateMove(ctx, src, st, func(m *site.Move) {
		m.PreArtifact = artifact
		if m.PreExported == nil {
			m.PreExported = &now
		}
		m.Error = ""
	}); err != nil {
		return fmt.Errorf("report pre-copy export: %w", err)
	}
	s.log.Info("site pre-copy exported", "site", st.Metadata.Name, "move", m.ID, "artifact", artifact)
	return nil
}

// precopyMarker is the root-owned file that records the finished import
// of move id's pre-copy in the site directory.
func precopyMarker(n Names, id string) string {
	return filepath.Join(n.Dir, "precopied."+keyPart(id))
}

// movePreImport is the target's step while the move is Copying and the
// pre-copy is exported: import it as a whole site (not switched to, never
// reported in Status), then warm its pool up with a request, so that the
// first visitors after the switch do not wait for PHP's caches.
func (s *Shard) movePreImport(ctx context.Context, src Sites, st *site.Site) error {
	m := st.Move
	if m.PreImported != nil {
		return nil
	}
	n := s.NamesFor(st.Metadata.UID)
	if m.ID == "" {
		return errors.New("move has no ID")
	}
	if !fileExists(precopyMarker(n, m.ID)) {
		if err := s.importSite(ctx, st, n, m.PreArtifact, preManifest, precopyMarker(n, m.ID)); err != nil {
			return err
		}
	}
	// Its writes stay frozen until the final import: the warm-up (and
	// nothing else) must not change the pre-copy, which the final export's
	// delta takes to be what the source had.
	if err := s.freezeWrites(ctx, n); err != nil {
		return err
	}
	if !st.Spec.Suspended {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		code, _ := s.siteRequest(wctx, st, n, "/")
		cancel()
		s.log.Debug("pre-copy warmed up", "site", st.Metadata.Name, "move", m.ID, "status", code)
	}
	now := s.cfg.Clock().UTC()
	if err := s.updateMove(ctx, src, st, func(m *site.Move) {
		if m.PreImported == nil {
			m.PreImported = &now
		}
		m.Error = ""
	}); err != nil {
		return fmt.Errorf("report pre-copy import: %w", err)
	}
	s.log.Info("site pre-copy imported", "site", st.Metadata.Name, "move", m.ID, "source", m.Source)
	return nil
}

// dbDelta is what a final export sends of the database after a pre-copy:
// the changed tables of all.
type dbDelta struct{ all, changed []string }

// finalDelta returns the tables of n's database that changed since the
// move's pre-copy (its manifest under prefix): those written since its
// clock, or whose definition is not the one it recorded, or new. It
// returns nil (send every table) when there is no usable pre-copy
// manifest or a table's name is one the dump cannot name alone. The
// site is frozen: nothing changes meanwhile.
func (s *Shard) finalDelta(ctx context.Context, b *blob.Bucket, prefix string, key []byte, n Names) *dbDelta {
	pre, err := readManifest(ctx, b, prefix+preManifest, key)
	if err != nil || pre == nil || pre.DBSince == 0 || pre.Schemas == nil {
		return nil
	}
	changed, err := s.db.ChangedTables(ctx, n.DB, pre.DBSince)
	if err != nil {
		return nil
	}
	schemas, err := s.db.TableSchemas(ctx, n.DB)
	if err != nil {
		return nil
	}
	d := &dbDelta{changed: changed}
	for t, sum := range schemas {
		d.all = append(d.all, t)
		if pre.Schemas[t] != sum && !slices.Contains(changed, t) {
			d.changed = append(d.changed, t)
		}
	}
	slices.Sort(d.all)
	slices.Sort(d.changed)
	return d
}

// moveUnfreeze is the source's step on abort: writes and cron come back,
// the transfer objects go.
func (s *Shard) moveUnfreeze(ctx context.Context, src Sites, st *site.Site) error {
	n := s.NamesFor(st.Metadata.UID)
	if err := s.unfreezeWrites(ctx, n); err != nil {
		return err
	}
	if err := s.deleteTransfer(ctx, st); err != nil {
		return err
	}
	if st.Move.Unfrozen != nil {
		return nil
	}
	now := s.cfg.Clock().UTC()
	if err := s.updateMove(ctx, src, st, func(m *site.Move) {
		if m.Unfrozen == nil {
			m.Unfrozen = &now
		}
		m.Error = ""
	}); err != nil {
		return fmt.Errorf("report unfreeze: %w", err)
	}
	s.log.Info("site move aborted: source unfrozen", "site", st.Metadata.Name, "move", st.Move.ID)
	return nil
}

// moveCleanUpSource is the source's step after the switch: its copy goes
// (the record stays: the site lives on the target), then the export.
func (s *Shard) moveCleanUpSource(ctx context.Context, src Sites, st *site.Site) error {
	// Edges learn of the switch through their watch a moment later; the
	// source keeps serving (frozen) until they surely have, so no request
	// routed by an older table meets a removed pool.
	if sw := st.Move.Switched; sw != nil {
		if wait := s.cfg.MoveGrace - s.cfg.Clock().Sub(*sw); wait > 0 {
			time.AfterFunc(wait, s.Wake)
			return nil
		}
	}
	if err := s.teardown(ctx, s.NamesFor(st.Metadata.UID)); err != nil {
		return err
	}
	if err := s.deleteTransfer(ctx, st); err != nil {
		return err
	}
	now := s.cfg.Clock().UTC()
	if err := s.updateMove(ctx, src, st, func(m *site.Move) {
		if m.CleanedUp == nil {
			m.CleanedUp = &now
		}
		m.Error = ""
	}); err != nil {
		return fmt.Errorf("report cleanup: %w", err)
	}
	s.log.Info("site moved away: source copy removed", "site", st.Metadata.Name, "move", st.Move.ID, "target", st.Move.Target)
	return nil
}

// deleteTransfer deletes the objects of st's move from the transfer store.
func (s *Shard) deleteTransfer(ctx context.Context, st *site.Site) error {
	if s.cfg.TransferURL == "" {
		return nil
	}
	b, err := s.openTransfer(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	return deletePrefix(ctx, b, transferPrefix(st.Metadata.UID, st.Move.ID))
}

// moveRemoveTarget is the target's step on abort (or when the site's
// deletion is requested mid-move): its copy goes.
func (s *Shard) moveRemoveTarget(ctx context.Context, src Sites, st *site.Site) error {
	if err := s.teardown(ctx, s.NamesFor(st.Metadata.UID)); err != nil {
		return err
	}
	if st.Move.Phase != site.MoveAborting || st.Move.CleanedUp != nil {
		return nil
	}
	now := s.cfg.Clock().UTC()
	if err := s.updateMove(ctx, src, st, func(m *site.Move) {
		if m.CleanedUp == nil {
			m.CleanedUp = &now
		}
	}); err != nil {
		return fmt.Errorf("report cleanup: %w", err)
	}
	s.log.Info("site move aborted: target copy removed", "site", st.Metadata.Name, "move", st.Move.ID)
	return nil
}

// importMarker is the root-owned file that records the finished import of
// move id in the site directory.
func importMarker(n Names, id string) string {
	return filepath.Join(n.Dir, "imported."+keyPart(id))
}

// moveImport is the target's step while the move is Importing.
func (s *Shard) moveImport(ctx context.Context, src Sites, st *site.Site) error {
	m := st.Move
	n := s.NamesFor(st.Metadata.UID)
	if m.ID == "" {
		return errors.New("move has no ID")
	}
	switch {
	case fileExists(importMarker(n, m.ID)):
		if !st.Spec.Suspended {
			if err := s.fpm.EnsurePool(ctx, s.poolFor(st, n, lookupUID(n.Unix))); err != nil {
				return err
			}
		}
	case fileExists(precopyMarker(n, m.ID)):
		if err := s.importOverPrecopy(ctx, st, n); err != nil {
			return err
		}
	default:
		if err := s.importSite(ctx, st, n, m.Artifact, finalManifest, importMarker(n, m.ID)); err != nil {
			return err
		}
	}
	endpoint := s.endpoint(n)
	if m.Imported != nil && m.TargetEndpoint == endpoint && m.TargetDocroot == n.Docroot {
		return nil
	}
	now := s.cfg.Clock().UTC()
	if err := s.updateMove(ctx, src, st, func(m *site.Move) {
		if m.Imported == nil {
			m.Imported = &now
		}
		m.TargetEndpoint, m.TargetDocroot = endpoint, n.Docroot
		m.Error = ""
	}); err != nil {
		return fmt.Errorf("report import: %w", err)
	}
	s.log.Info("site imported", "site", st.Metadata.Name, "move", m.ID, "source", m.Source)
	return nil
}

func lookupUID(name string) int {
	uid, _ := lookupIDs(name)
	return uid
}

// openedExport is an export of a move read and checked: its manifest and
// the verified local copies of its objects.
type openedExport struct {
	man  *manifest
	objs *exportObjects
}

// openExport reads the export artifact (manifest manifestName of st's
// move), checks its manifest, and copies every object here, each checked
// against the manifest before a byte of it is used. The caller closes the
// objects.
func (s *Shard) openExport(ctx context.Context, st *site.Site, artifact, manifestName string) (*openedExport, error) {
	m := st.Move
	key, err := s.moveKey(ctx, st)
	if err != nil {
		return nil, err
	}
	if want := transferPrefix(st.Metadata.UID, m.ID) + manifestName; artifact != want {
		return nil, fmt.Errorf("export %s is not where the export of this move belongs (%s)", artifact, want)
	}
	b, err := s.openTransfer(ctx)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	man, err := readManifest(ctx, b, artifact, key)
	if err != nil {
		return nil, err
	}
	if man == nil {
		return nil, fmt.Errorf("export %s not found", artifact)
	}
	if man.MoveID != m.ID || man.SiteUID != st.Metadata.UID {
		return nil, fmt.Errorf("export %s is of move %s of site %s, not of this move", artifact, man.MoveID, man.SiteUID)
	}
	objs, err := s.fetchExport(ctx, b, man)
	if err != nil {
		return nil, err
	}
	return &openedExport{man: man, objs: objs}, nil
}

// importSite makes the site on this shard from the export artifact
// (manifest manifestName of its move), from scratch, and writes marker
// once it is done.
func (s *Shard) importSite(ctx context.Context, st *site.Site, n Names, artifact, manifestName, marker string) (err error) {
	m := st.Move
	steps := newPhaseLog(s.cfg.Clock)
	defer func() {
		if err == nil {
			s.log.Info("site import steps", "site", st.Metadata.Name, "move", m.ID, "export", manifestName, "steps", steps.String())
		}
	}()
	exp, err := s.openExport(ctx, st, artifact, manifestName)
	if err != nil {
		return err
	}
	objs, man := exp.objs, exp.man
	defer objs.close()
	core, err := s.importCore(ctx, st, man)
	if err != nil {
		return err
	}
	steps.mark("fetch")

	// Whatever an interrupted import left goes first (the Unix user stays:
	// it is the same either way).
	if err := s.fpm.RemovePool(ctx, n.Pool); err != nil {
		return err
	}
	if err := s.dropSiteDatabase(ctx, n); err != nil {
		return err
	}
	if err := removeTree(n.Dir); err != nil {
		return fmt.Errorf("remove partial import: %w", err)
	}
	steps.mark("clear")
	s.mu.Lock()
	delete(s.converged, n.ID)
	s.mu.Unlock()

	uid, gid, err := s.ensureSiteUser(ctx, n)
	if err != nil {
		return err
	}
	steps.mark("user")
	if err := ensureDir(n.Dir, 0o750, 0, gid); err != nil {
		return err
	}
	// Its own database password; the salts of the export, so cookies and
	// nonces made on the source stay valid.
	sec := &secrets{DBPassword: newDBPassword()}
	if err := readSecrets(objs.secrets, &sec.Salts); err != nil {
		return err
	}
	if err := writeSecrets(n.Dir, sec); err != nil {
		return err
	}
	if err := s.db.EnsureDatabase(ctx, n.DB, n.DBUser, sec.DBPassword, st.Spec.Limits.WithDefaults().DBConnections); err != nil {
		return err
	}
	steps.mark("database")
	if err := s.loadDatabase(ctx, objs.database, n.DB); err != nil {
		return err
	}
	steps.mark("load")
	if err := wordpress.BuildDocroot(core, n.Docroot); err != nil {
		return err
	}
	steps.mark("docroot")
	// The volume first, so the files land on it: made big enough for them
	// (the export is compressed; twice its size is the estimate) even when
	// they exceed the site's limit.
	var need int64
	if o, err := man.object(objFiles); err == nil {
		need = 2 * o.Size
	}
	if _, err := s.ensureVolume(ctx, n, st.Spec.Limits.WithDefaults().DiskMB, need, uid, gid); err != nil {
		return err
	}
	steps.mark("volume")
	if err := restoreFiles(objs.files, filepath.Join(n.Docroot, "wp-content"), uid, gid); err != nil {
		return err
	}
	steps.mark("files")
	if err := s.ensureFiles(ctx, st, n, sec, uid, gid); err != nil {
		return err
	}
	steps.mark("config")
	// Installed: the normal convergence after the switch must never run
	// the installer over the imported database.
	if err := os.WriteFile(filepath.Join(n.Dir, "installed"), []byte(core.Version+"\n"), 0o600); err != nil {
		return fmt.Errorf("install marker: %w", err)
	}
	if !st.Spec.Suspended {
		if err := s.fpm.EnsurePool(ctx, s.poolFor(st, n, uid)); err != nil {
			return err
		}
	}
	steps.mark("pool")
	if err := os.WriteFile(marker, []byte(artifact+"\n"), 0o600); err != nil {
		return fmt.Errorf("import marker: %w", err)
	}
	return nil
}

// importOverPrecopy loads the move's final export over the site this
// shard made from the pre-copy (while the source is frozen, so it is
// short): the database is replaced by the final dump, wp-content by the
// final files; user, password, wp-config and the (warm) pool stay. When
// the final export cannot go over the pre-copy (another core, other salts)
// the site is imported from scratch instead.
func (s *Shard) importOverPrecopy(ctx context.Context, st *site.Site, n Names) (err error) {
	m := st.Move
	steps := newPhaseLog(s.cfg.Clock)
	defer func() {
		if err == nil {
			s.log.Info("site import steps", "site", st.Metadata.Name, "move", m.ID, "export", finalManifest, "over", "pre-copy", "steps", steps.String())
		}
	}()
	exp, err := s.openExport(ctx, st, m.Artifact, finalManifest)
	if err != nil {
		return err
	}
	defer exp.objs.close()
	steps.mark("fetch")
	sec, err := readSecretsFile(n.Dir)
	if err != nil {
		return err
	}
	var salts wordpress.Salts
	if err := readSecrets(exp.objs.secrets, &salts); err != nil {
		return err
	}
	core, err := s.importCore(ctx, st, exp.man)
	if err != nil {
		return err
	}
	if salts != sec.Salts || core.Version != s.siteCoreVersion(n) {
		s.log.Info("final export differs from the pre-copy in salts or core: importing from scratch", "site", st.Metadata.Name, "move", m.ID)
		exp.objs.close()
		return s.importSite(ctx, st, n, m.Artifact, finalManifest, importMarker(n, m.ID))
	}
	if exp.man.Delta {
		// Only the tables changed since the pre-copy come (each dropped
		// and made again by the dump); the pre-copy's others are as they
		// were on the source (the warm-up could not write: its writes
		// were frozen), but those the site dropped since go.
		have, err := s.db.Tables(ctx, n.DB)
		if err != nil {
			return err
		}
		var gone []string
		for _, t := range have {
			if !slices.Contains(exp.man.Tables, t) {
				gone = append(gone, t)
			}
		}
		if err := s.db.DropTables(ctx, n.DB, gone); err != nil {
			return err
		}
	} else {
		// The database: dropped (tables the site dropped since the
		// pre-copy must not stay) and loaded from the final dump; the
		// account and its grants stay.
		if err := s.db.DropSchema(ctx, n.DB); err != nil {
			return err
		}
		if err := s.db.EnsureDatabase(ctx, n.DB, n.DBUser, sec.DBPassword, st.Spec.Limits.WithDefaults().DBConnections); err != nil {
			return err
		}
	}
	if err := s.loadDatabase(ctx, exp.objs.database, n.DB); err != nil {
		return err
	}
	steps.mark("load")
	// The files: what the pre-copy (and its warm-up) left goes, the final
	// files come.
	uid, gid := lookupIDs(n.Unix)
	content := filepath.Join(n.Docroot, "wp-content")
	if err := emptyTree(content); err != nil {
		return fmt.Errorf("replace the pre-copy's files: %w", err)
	}
	if err := wordpress.BuildContent(core, content); err != nil {
		return err
	}
	var need int64
	if o, err := exp.man.object(objFiles); err == nil {
		need = 2 * o.Size
	}
	if _, err := s.ensureVolume(ctx, n, st.Spec.Limits.WithDefaults().DiskMB, need, uid, gid); err != nil {
		return err
	}
	if err := restoreFiles(exp.objs.files, content, uid, gid); err != nil {
		return err
	}
	steps.mark("files")
	if err := s.ensureFiles(ctx, st, n, sec, uid, gid); err != nil {
		return err
	}
	if !st.Spec.Suspended {
		if err := s.fpm.EnsurePool(ctx, s.poolFor(st, n, uid)); err != nil {
			return err
		}
	}
	// The pre-copy's writes were frozen for its warm-up; the site's are
	// taken again once it is switched here.
	if err := s.unfreezeWrites(ctx, n); err != nil {
		return err
	}
	steps.mark("config")
	if err := os.WriteFile(importMarker(n, m.ID), []byte(m.Artifact+"\n"), 0o600); err != nil {
		return fmt.Errorf("import marker: %w", err)
	}
	return nil
}

// emptyTree removes everything inside dir but dir itself, and keeps the
// directories that are mount points (a site volume's binds), emptying them
// instead. Links are removed, never followed.
func emptyTree(dir string) error {
	parent, err := os.Lstat(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() && devOf(fi) != devOf(parent) {
			if err := emptyTree(p); err != nil {
				return err
			}
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

func devOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev)
	}
	return 0
}

// importCore is the core an imported site's docroot is built on: the one
// it ran on the source (its database is at that core's version), fetched if
// this shard has not got it — the move fails when this shard cannot get it
// (the source goes on serving) rather than run the site on a core its
// database was not made by; its spec's (the shard's default for "") for an
// export from a shard before several cores.
func (s *Shard) importCore(ctx context.Context, st *site.Site, man *manifest) (*wordpress.Core, error) {
	want := man.CoreVersion
	if want == "" {
		want = st.Spec.CoreVersion
	}
	return s.coreFor(ctx, want)
}

// moveKey returns the key that authenticates the export of st's move.
func (s *Shard) moveKey(ctx context.Context, st *site.Site) ([]byte, error) {
	if s.cfg.MoveKey == nil {
		return nil, errors.New("no move key (shard.Config.MoveKey): this shard cannot authenticate exports")
	}
	key, err := s.cfg.MoveKey(ctx, st.Metadata.Name, st.Metadata.UID, st.Move.ID)
	if err != nil {
		return nil, fmt.Errorf("move key: %w", err)
	}
	if len(key) < 32 {
		return nil, fmt.Errorf("move key of %d bytes, want at least 32", len(key))
	}
	return key, nil
}

// exportObjects are the verified local copies of an export's objects.
type exportObjects struct {
	secrets, database, files *localObject
}

// fetchExport copies every object of man into the shard's transfer
// scratch directory, each checked against the manifest (fetchObject).
func (s *Shard) fetchExport(ctx context.Context, b *blob.Bucket, man *manifest) (*exportObjects, error) {
	objs := &exportObjects{}
	for _, x := range []struct {
		name string
		dst  **localObject
	}{{objSecrets, &objs.secrets}, {objDatabase, &objs.database}, {objFiles, &objs.files}} {
		o, err := man.object(x.name)
		if err != nil {
			objs.close()
			return nil, err
		}
		if *x.dst, err = fetchObject(ctx, b, o, s.transferScratch()); err != nil {
			objs.close()
			return nil, err
		}
	}
	return objs, nil
}

func (e *exportObjects) close() {
	for _, o := range []*localObject{e.secrets, e.database, e.files} {
		if o != nil {
			o.Close()
		}
	}
}

// transferScratch is the root-only directory (0700) where a target keeps
// the verified copies of an export's objects while it imports them;
// Prepare empties it.
func (s *Shard) transferScratch() string { return filepath.Join(s.cfg.Dir, "transfer-scratch") }

func readSecrets(r io.Reader, salts *wordpress.Salts) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	var es exportedSecrets
	if err := json.Unmarshal(data, &es); err != nil {
		return fmt.Errorf("exported secrets: %w", err)
	}
	if err := json.Unmarshal(es.Salts, salts); err != nil {
		return fmt.Errorf("exported salts: %w", err)
	}
	if salts.AuthKey == "" || salts.LoggedInKey == "" {
		return errors.New("exported secrets carry no salts")
	}
	return nil
}

func (s *Shard) loadDatabase(ctx context.Context, r io.Reader, db string) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("database dump: %w", err)
	}
	return s.db.Load(ctx, db, gz)
}

func restoreFiles(r io.Reader, dir string, uid, gid int) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("site files: %w", err)
	}
	// Uploads are the site user's, everything else root's.
	owner := func(rel string) (int, int) {
		if uid < 0 {
			return -1, -1
		}
		if rel == "uploads" || strings.HasPrefix(rel, "uploads/") {
			return uid, gid
		}
		return 0, 0
	}
	return untarTree(dir, gz, owner)
}

// phaseLog records how long each named step of a move's export or import
// took, for its log line (creation's steps: stepTimer, steptimer.go).
type phaseLog struct {
	now   func() time.Time
	last  time.Time
	parts []string
}

func newPhaseLog(now func() time.Time) *phaseLog {
	return &phaseLog{now: now, last: now()}
}

// mark ends the step named name (it began at the previous mark).
func (t *phaseLog) mark(name string) {
	now := t.now()
	t.parts = append(t.parts, fmt.Sprintf("%s=%s", name, now.Sub(t.last).Round(time.Millisecond)))
	t.last = now
}

func (t *phaseLog) String() string { return strings.Join(t.parts, " ") }
