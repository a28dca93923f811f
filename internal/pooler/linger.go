package pooler

import (
	"slices"
	"time"
)

// Lingering.
//
// A WordPress page runs thirty-odd statements, one at a time, with PHP
// working between them. Put back after every statement, a backend is taken
// over by another site's statement in the gap (COM_CHANGE_USER: two round
// trips and a fresh session on the server), and the page's next statement
// takes over yet another site's backend: when more pages run than the
// shard has backends, almost every statement costs a takeover. A backend
// that lingers with its session for Config.Linger after a statement is
// found there by the session's next one, at no cost; if the session sends
// nothing in that time, the backend goes back to the pool.
//
// While it lingers, a backend is still the session's only in the sense
// that no other session runs a statement on it: a session of the same
// account that needs one takes it at once (no takeover: the same user; the
// session state is replayed where it differs, as for any pooled backend),
// and another account's session waits for it, at most Linger, or for any
// other backend put back. Nothing of the session's is kept for it that a
// pooled backend would not keep: only backends the session would have put
// back linger (never one in a transaction, pinned, or held for
// LAST_INSERT_ID and the like).
//
// Turns. While statements of other sessions wait at MaxServerBackends
// (more pages run than the shard has backends), each backend lingering
// with a session keeps one of them waiting; a session whose statements
// come less than Linger apart would keep its backend for the whole page.
// So a session's backend lingers only for a turn (Config.LingerTurn, from
// when the session took it from the pools; reclaiming it keeps the turn):
// once the turn is over, the session's next statement puts the backend
// back if a statement waits that it would serve (put hands it to the first
// one), and lingers as before if none waits. A turn bounds how long a
// waiting statement waits behind lingering sessions — about the turn times
// the waiting statements per backend, which must stay under QueueWait, or
// the statement opens a backend beyond the bound — and how many times a
// page's backend changes hands: under bench-db's load (16 pages of 16 sites
// on 4 backends, the PHP between two statements stretched by the cores'
// contention) a 5 ms linger without turns lost the backend after about 14
// of a page's 32 statements, each then a COM_CHANGE_USER.
//
// On a machine loaded by more than the shard, turns and lingering stretch
// with its contention, and must not make statements open backends beyond
// the bound: a turn ends early when a statement it would serve has waited
// half of QueueWait, and a statement that waited QueueWait takes over the
// backend lingering longest for another account's session (it is idle)
// before it opens one beyond the bound (Stats().LingerCut).
//
// Accounts with a replica do not linger: their reads go to the replica
// statement by statement.
//
// Lingering is off unless Config.Linger is set (the platform's
// --db-pooler-linger). Once the pooler's socket I/O stopped waking the
// runtime's monitor thread (internal/quietio), bench-db measured a 5 ms
// linger costlier than the takeovers it saves: without it 27 of a page's
// 32 statements took a backend over (COM_CHANGE_USER, two round trips)
// instead of 5, yet aipress spent 0.7 ms less CPU per page, req/s was
// the same or higher and p99 fell from 1.2× to 1.05× of direct's
// (docs/database.md, "Lingering off").

// DefaultLingerTurn is Config.LingerTurn's default.
const DefaultLingerTurn = 25 * time.Millisecond

// linger keeps b, which s just used, for s for Config.Linger; false: the
// pooler does not linger, and b is s's no longer (put back or closed).
func (s *session) linger(b *backend) bool {
	p := s.p
	if p.cfg.Linger <= 0 || b.pool.replica || s.acct.replica != nil || b.tainted {
		b.pool.put(b)
		return false
	}
	if p.overflowed(false) {
		b.pool.put(b) // closes it
		return false
	}
	now := p.cfg.Clock()
	p.mu.Lock()
	if waits, long := p.waitsFor(b, now); long || waits && p.cfg.LingerTurn > 0 && now.Sub(s.turn) >= p.cfg.LingerTurn {
		// The session's turn is over and another statement waits, or
		// one has waited half its QueueWait: it gets the backend now
		// (put hands it over).
		p.mu.Unlock()
		p.turnsEnded.Add(1)
		b.pool.put(b)
		return false
	}
	b.lingerFor = s
	p.lingering = append(p.lingering, b)
	// (One timer per backend, made on its first lingering and reset on
	// the next: not one per statement. The deadline is set before the
	// timer, which cannot fire before it.)
	b.lingerUntil = time.Now().Add(p.cfg.Linger)
	if b.lingerTimer == nil {
		b.lingerTimer = time.AfterFunc(p.cfg.Linger, func() { p.expire(b) })
	} else {
		b.lingerTimer.Reset(p.cfg.Linger)
	}
	p.mu.Unlock()
	return true
}

// reclaim takes back the backend s left lingering (nil: none, or it went
// back to the pool meanwhile).
func (s *session) reclaim() *backend {
	b := s.lb
	if b == nil {
		return nil
	}
	s.lb = nil
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.lingerFor != s {
		return nil
	}
	p.unlingerLocked(b)
	return b
}

// unlinger gives the backend s left lingering back to the pool now.
func (s *session) unlinger() {
	if b := s.reclaim(); b != nil {
		b.pool.put(b)
	}
}

// expire puts b back when it still lingers and its lingering is over (a
// timer of an earlier lingering may run late, after linger reset it).
func (p *Pooler) expire(b *backend) {
	p.mu.Lock()
	if b.lingerFor == nil || time.Now().Before(b.lingerUntil) {
		p.mu.Unlock()
		return
	}
	p.unlingerLocked(b)
	p.mu.Unlock()
	b.pool.put(b)
}

// takeLingering takes a backend with caps lingering for another session
// of pl's account (nil: none). It is still counted in pl.open.
func (p *Pooler) takeLingering(pl *pool, caps uint32) *backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.lingering {
		if b.pool == pl && b.caps == caps {
			p.unlingerLocked(b)
			return b
		}
	}
	return nil
}

// takeLingeringOther takes the backend lingering longest of those with
// caps on pl's server that another account's session left (nil: none),
// for a statement that waited Config.QueueWait: it is idle, so better
// taken over than a backend opened beyond the bound. Its account stops
// counting it (pl counts it already).
func (p *Pooler) takeLingeringOther(pl *pool, caps uint32) *backend {
	p.mu.Lock()
	var b *backend
	for _, x := range p.lingering { // oldest first
		if x.pool != pl && x.caps == caps && x.pool.replica == pl.replica && x.pool.server == pl.server && x.salt != nil {
			b = x
			break
		}
	}
	if b != nil {
		p.unlingerLocked(b)
	}
	p.mu.Unlock()
	if b != nil {
		b.pool.forget()
	}
	return b
}

// unlingerLocked ends b's lingering (p.mu held).
func (p *Pooler) unlingerLocked(b *backend) {
	b.lingerFor = nil
	if b.lingerTimer != nil {
		b.lingerTimer.Stop()
	}
	if i := slices.Index(p.lingering, b); i >= 0 {
		p.lingering = slices.Delete(p.lingering, i, i+1)
	}
}
