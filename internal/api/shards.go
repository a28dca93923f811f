package api

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"

	"github.com/aipress/aipress/internal/store"
)

// ShardList is the body of GET /v1/shards: one page of shards, ordered by
// name. Each shard's site count there is the one its agent last reported
// (usage.sites).
type ShardList struct {
	Items    []store.Shard `json:"items"`
	Continue string        `json:"continue,omitempty"`
}

// ShardResponse is the body of GET /v1/shards/{name} and of the cordon,
// uncordon and drain routes: the shard and, on GET, how many sites the
// store places on it (its own and those moving to or from it).
type ShardResponse struct {
	store.Shard
	Sites *int `json:"sites,omitempty"`
}

var shardNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidShardName reports whether n is a valid shard name: an RFC 1123 label
// (1-63 lowercase letters, digits and hyphens, not starting or ending with
// a hyphen).
func ValidShardName(n string) bool { return shardNameRE.MatchString(n) }

func shardNotFound(name string) HTTPError {
	return errorf(http.StatusNotFound, CodeNotFound, "shard %q not found", name)
}

// shardName returns the {name} path value; invalid names cannot exist.
func shardName(c *call) (string, error) {
	name := c.r.PathValue("name")
	if !ValidShardName(name) {
		return "", shardNotFound(name)
	}
	return name, nil
}

func (s *server) listShards(c *call) (response, error) {
	q := c.r.URL.Query()
	limit := DefaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListLimit {
			return response{}, badRequest("limit must be an integer between 1 and %d, got %q", MaxListLimit, v)
		}
		limit = n
	}
	after, err := store.DecodeContinue(q.Get("continue"))
	if err != nil {
		return response{}, badRequest("invalid continue token %q", q.Get("continue"))
	}
	all, err := s.cfg.Store.ListShards(c.r.Context())
	if err != nil {
		return response{}, internal(fmt.Errorf("list shards: %w", err))
	}
	out := ShardList{Items: []store.Shard{}}
	for _, sh := range all {
		if after != "" && sh.Name <= after {
			continue
		}
		if len(out.Items) == limit {
			out.Continue = store.EncodeContinue(out.Items[limit-1].Name)
			break
		}
		out.Items = append(out.Items, sh)
	}
	return response{status: http.StatusOK, body: out}, nil
}

// countSites counts the sites the store places on shard, up to the first
// page past limit (a page of at most store.MaxLimit each).
func (s *server) countSites(c *call, shard string, limit int) (int, error) {
	n := 0
	opts := store.ListOptions{Shard: shard, Limit: min(limit, store.MaxLimit)}
	for {
		page, err := s.cfg.Store.ListSites(c.r.Context(), opts)
		if err != nil {
			return 0, fmt.Errorf("list sites of shard %q: %w", shard, err)
		}
		n += len(page.Items)
		if page.Continue == "" || n >= limit {
			return n, nil
		}
		opts.Continue = page.Continue
	}
}

func (s *server) getShard(c *call) (response, error) {
	name, err := shardName(c)
	if err != nil {
		return response{}, err
	}
	sh, err := s.cfg.Store.GetShard(c.r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, shardNotFound(name)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("get shard %q: %w", name, err))
	}
	n, err := s.countSites(c, name, 1<<30)
	if err != nil {
		return response{}, internal(err)
	}
	return response{status: http.StatusOK, body: ShardResponse{Shard: *sh, Sites: &n}}, nil
}

// updateShard applies mutate to the named shard and answers with it.
func (s *server) updateShard(c *call, mutate func(*store.Shard)) (response, error) {
	name, err := shardName(c)
	if err != nil {
		return response{}, err
	}
	var before int64
	sh, err := s.cfg.Store.UpdateShard(c.r.Context(), name, func(sh *store.Shard) error {
		before = sh.ResourceVersion
		mutate(sh)
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return response{}, shardNotFound(name)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("update shard %q: %w", name, err))
	}
	return response{status: http.StatusOK, body: ShardResponse{Shard: *sh}, unchanged: sh.ResourceVersion == before}, nil
}

// cordonShard stops placing new sites on the shard; its sites stay.
func (s *server) cordonShard(c *call) (response, error) {
	return s.updateShard(c, func(sh *store.Shard) { sh.Cordoned = true })
}

// uncordonShard lets the shard take new sites again, and stops a drain.
func (s *server) uncordonShard(c *call) (response, error) {
	return s.updateShard(c, func(sh *store.Shard) { sh.Cordoned, sh.Draining = false, false })
}

// drainShard cordons the shard and marks it Draining; the control plane's
// leader then moves its sites away.
func (s *server) drainShard(c *call) (response, error) {
	return s.updateShard(c, func(sh *store.Shard) { sh.Cordoned, sh.Draining = true, true })
}

// deleteShard removes the record of a shard that holds no sites.
func (s *server) deleteShard(c *call) (response, error) {
	name, err := shardName(c)
	if err != nil {
		return response{}, err
	}
	n, err := s.countSites(c, name, 1)
	if err != nil {
		return response{}, internal(err)
	}
	if n > 0 {
		return response{}, conflict("shard %q still holds sites; drain it first", name)
	}
	err = s.cfg.Store.DeleteShard(c.r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, shardNotFound(name)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("delete shard %q: %w", name, err))
	}
	return response{status: http.StatusNoContent}, nil
}
