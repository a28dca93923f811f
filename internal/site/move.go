package site

import "time"

// MovePhase is the step an in-flight move of a site between shards is at.
type MovePhase string

// Move phases, in order. A move advances only forward; each step is done by
// whoever the phase names and is idempotent, so a crash at any point is
// resumed by doing the step again.
const (
	// MoveCopying: the pre-copy, while the site serves and takes writes on
	// the source. The source writes a first export (database dump, files,
	// secrets) to the transfer store and sets PreArtifact and
	// PreExported; the target imports it as it would a final export (its
	// own user, database, files and pool, warmed up with a request) and
	// sets PreImported. Then MoveExporting: the freeze, and a final export
	// that the target loads over its copy (the database replaced, the
	// files replaced) — the freeze lasts only that. A move recorded in
	// MoveExporting (by an older control plane) skips the pre-copy.
	MoveCopying MovePhase = "Copying"
	// MoveExporting: the source shard freezes writes to the site (its
	// database user loses write grants, its cron stops; the edge refuses
	// unsafe methods with 503) and writes a consistent database dump, the
	// site's files and its secrets to the transfer store, then sets
	// Exported.
	MoveExporting MovePhase = "Exporting"
	// MoveImporting: the target shard loads the export into its own
	// database and files (over its pre-copy, when it made one), starts
	// the site's pool, and sets Imported,
	// TargetEndpoint and TargetDocroot. It never writes Status meanwhile.
	MoveImporting MovePhase = "Importing"
	// MoveCleaningUp: the control plane switched the site (Status.Shard,
	// Endpoint and Docroot now name the target, Switched is set); the
	// source removes its copy and sets CleanedUp.
	MoveCleaningUp MovePhase = "CleaningUp"
	// MoveDone: the move finished; the record stays for reporting until
	// the next move.
	MoveDone MovePhase = "Done"
	// MoveAborting: the move is being rolled back (before the switch
	// only): the target removes its copy (sets CleanedUp), the source
	// unfreezes (sets Unfrozen). Then MoveAborted.
	MoveAborting MovePhase = "Aborting"
	// MoveAborted: rolled back; the site never left the source.
	MoveAborted MovePhase = "Aborted"
)

// Move is a site's move from one shard to another. The control plane writes
// ID, Source, Target, Phase, RequestedAt and Switched; the source shard
// reports PreArtifact and PreExported (the pre-copy), FreezeStarted,
// Exported, CleanedUp (after the switch) and Unfrozen (on abort); the
// target reports PreImported, Imported, TargetEndpoint, TargetDocroot and,
// on abort, CleanedUp. Shards report through the control
// plane, which advances the phase (AdvanceMove).
type Move struct {
	ID          string    `json:"id"`
	Source      string    `json:"source"`
	Target      string    `json:"target"`
	Phase       MovePhase `json:"phase"`
	RequestedAt time.Time `json:"requested_at"`
	// PreArtifact names the pre-copy's export in the transfer store (set
	// by the source in MoveCopying); PreExported and PreImported are when
	// the source exported it and the target imported it.
	PreArtifact string     `json:"pre_artifact,omitempty"`
	PreExported *time.Time `json:"pre_exported,omitempty"`
	PreImported *time.Time `json:"pre_imported,omitempty"`
	// Artifact names the export in the transfer store (set by the source).
	Artifact       string     `json:"artifact,omitempty"`
	FreezeStarted  *time.Time `json:"freeze_started,omitempty"`
	Exported       *time.Time `json:"exported,omitempty"`
	Imported       *time.Time `json:"imported,omitempty"`
	TargetEndpoint string     `json:"target_endpoint,omitempty"`
	TargetDocroot  string     `json:"target_docroot,omitempty"`
	Switched       *time.Time `json:"switched,omitempty"`
	CleanedUp      *time.Time `json:"cleaned_up,omitempty"`
	Unfrozen       *time.Time `json:"unfrozen,omitempty"`
	// Error is the last failure a shard reported for its step (the step is
	// retried).
	Error string `json:"error,omitempty"`
}

// Active reports whether the move still involves both shards (it is not
// Done or Aborted).
func (m *Move) Active() bool {
	return m != nil && m.Phase != MoveDone && m.Phase != MoveAborted
}

// Frozen reports whether writes to the site are frozen by the move: from the
// start until the switch, and while an abort has not unfrozen the source.
func (m *Move) Frozen() bool {
	if m == nil {
		return false
	}
	switch m.Phase {
	case MoveExporting, MoveImporting:
		return true
	case MoveAborting:
		return m.Unfrozen == nil
	}
	return false
}

// FreezeWindow is how long writes were frozen: from FreezeStarted to
// Switched (or Unfrozen), or until now while still frozen. Zero before the
// freeze started.
func (m *Move) FreezeWindow(now time.Time) time.Duration {
	if m == nil || m.FreezeStarted == nil {
		return 0
	}
	end := now
	switch {
	case m.Switched != nil:
		end = *m.Switched
	case m.Unfrozen != nil:
		end = *m.Unfrozen
	}
	return end.Sub(*m.FreezeStarted)
}

// AdvanceMove moves s's move to its next phase when the shards' reports
// allow it, and reports whether it changed anything. The control plane calls
// it after every report a shard makes about a move; it is the only place the
// switch happens: at Importing with Imported set, the site's Status moves to
// the target (shard, endpoint, docroot) in the same write.
func AdvanceMove(s *Site, now time.Time) bool {
	m := s.Move
	if m == nil {
		return false
	}
	switch m.Phase {
	case MoveCopying:
		if m.PreImported != nil {
			m.Phase = MoveExporting
			m.Error = ""
			return true
		}
	case MoveExporting:
		if m.Exported != nil {
			m.Phase = MoveImporting
			return true
		}
	case MoveImporting:
		if m.Imported != nil && m.TargetEndpoint != "" {
			t := now
			m.Switched = &t
			m.Phase = MoveCleaningUp
			m.Error = ""
			s.Status.Shard = m.Target
			s.Status.Endpoint = m.TargetEndpoint
			s.Status.Docroot = m.TargetDocroot
			return true
		}
	case MoveCleaningUp:
		if m.CleanedUp != nil {
			m.Phase = MoveDone
			m.Error = ""
			return true
		}
	case MoveAborting:
		if m.CleanedUp != nil && m.Unfrozen != nil {
			m.Phase = MoveAborted
			return true
		}
	}
	return false
}
