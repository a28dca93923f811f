package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// packID names a pack: SHA-256 of its stored bytes.
type packID [32]byte

// location is where a chunk lives: 16 bytes per chunk in memory (plus the
// map's key and overhead), so a million chunks cost tens of MB.
type location struct {
	pack   uint32 // index into memIndex.packs
	offset uint32 // of the sealed chunk in the pack
	length uint32 // of the sealed chunk
	rawLen uint32 // plaintext length
}

// memIndex is the repository's index in memory: chunk id -> location.
type memIndex struct {
	mu      sync.RWMutex
	packs   []packID
	packNum map[packID]uint32
	chunks  map[ChunkID]location
	files   map[string]bool // index files loaded
}

func newMemIndex() *memIndex {
	return &memIndex{packNum: map[packID]uint32{}, chunks: map[ChunkID]location{}, files: map[string]bool{}}
}

func (m *memIndex) packRef(p packID) uint32 {
	n, ok := m.packNum[p]
	if !ok {
		n = uint32(len(m.packs))
		m.packs = append(m.packs, p)
		m.packNum[p] = n
	}
	return n
}

// has reports whether the chunk is indexed.
func (m *memIndex) has(id ChunkID) bool {
	m.mu.RLock()
	_, ok := m.chunks[id]
	m.mu.RUnlock()
	return ok
}

// lookup returns the chunk's pack and location.
func (m *memIndex) lookup(id ChunkID) (packID, location, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	loc, ok := m.chunks[id]
	if !ok {
		return packID{}, loc, false
	}
	return m.packs[loc.pack], loc, true
}

// addPacks merges pack contents (first location of a chunk wins).
func (m *memIndex) addPacks(packs []packEntries) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range packs {
		n := m.packRef(p.id)
		for _, c := range p.chunks {
			if _, ok := m.chunks[c.id]; !ok {
				m.chunks[c.id] = location{pack: n, offset: c.offset, length: c.length, rawLen: c.rawLen}
			}
		}
	}
}

// packEntries are the chunks of one pack.
type packEntries struct {
	id     packID
	chunks []packChunk
}

// packChunk is one chunk in a pack.
type packChunk struct {
	id     ChunkID
	offset uint32
	length uint32
	rawLen uint32
}

// size is the byte length of the pack's chunk area (without header).
func (p *packEntries) dataEnd() int64 {
	var end int64
	for _, c := range p.chunks {
		end = max(end, int64(c.offset)+int64(c.length))
	}
	return end
}

const indexMagic = "AIPIDX1\n"

// encodeIndex serialises pack entries (binary, compact).
func encodeIndex(packs []packEntries) []byte {
	n := 0
	for _, p := range packs {
		n += 40 + len(p.chunks)*(32+15)
	}
	b := make([]byte, 0, len(indexMagic)+10+n)
	b = append(b, indexMagic...)
	b = binary.AppendUvarint(b, uint64(len(packs)))
	for _, p := range packs {
		b = append(b, p.id[:]...)
		b = binary.AppendUvarint(b, uint64(len(p.chunks)))
		for _, c := range p.chunks {
			b = append(b, c.id[:]...)
			b = binary.AppendUvarint(b, uint64(c.offset))
			b = binary.AppendUvarint(b, uint64(c.length))
			b = binary.AppendUvarint(b, uint64(c.rawLen))
		}
	}
	return b
}

var errIndexFormat = errors.New("malformed index")

func decodeIndex(b []byte) ([]packEntries, error) {
	if !strings.HasPrefix(string(b[:min(len(b), len(indexMagic))]), indexMagic) {
		return nil, errIndexFormat
	}
	b = b[len(indexMagic):]
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errIndexFormat
		}
		b = b[n:]
		return v, nil
	}
	u32 := func() (uint32, error) {
		v, err := uv()
		if err != nil || v > 1<<32-1 {
			return 0, errIndexFormat
		}
		return uint32(v), nil
	}
	np, err := uv()
	if err != nil || np > uint64(len(b)) {
		return nil, errIndexFormat
	}
	packs := make([]packEntries, 0, np)
	for range np {
		var p packEntries
		if len(b) < 32 {
			return nil, errIndexFormat
		}
		copy(p.id[:], b)
		b = b[32:]
		nc, err := uv()
		if err != nil || nc > uint64(len(b)) {
			return nil, errIndexFormat
		}
		p.chunks = make([]packChunk, nc)
		for i := range p.chunks {
			c := &p.chunks[i]
			if len(b) < 32 {
				return nil, errIndexFormat
			}
			copy(c.id[:], b)
			b = b[32:]
			if c.offset, err = u32(); err != nil {
				return nil, err
			}
			if c.length, err = u32(); err != nil {
				return nil, err
			}
			if c.rawLen, err = u32(); err != nil {
				return nil, err
			}
		}
		packs = append(packs, p)
	}
	if len(b) != 0 {
		return nil, errIndexFormat
	}
	return packs, nil
}

// writeIndex stores an index file for the packs and returns its id and
// stored size.
func (r *Repo) writeIndex(ctx context.Context, packs []packEntries) (string, int64, error) {
	return r.writeFile(ctx, prefixIndex, encodeIndex(packs), aadIndex)
}

// loadIndexFile reads and decodes one index file.
func (r *Repo) loadIndexFile(ctx context.Context, id string) ([]packEntries, error) {
	plain, err := r.readFile(ctx, prefixIndex, id, aadIndex)
	if err != nil {
		return nil, err
	}
	packs, err := decodeIndex(plain)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w: %v", prefixIndex, id, ErrCorrupt, err)
	}
	return packs, nil
}

// refreshIndex brings the in-memory index up to date with the index files
// in the bucket: new files are merged; if any loaded file is gone (a prune
// replaced it) the index is rebuilt from scratch.
func (r *Repo) refreshIndex(ctx context.Context) error {
	objs, err := listAll(ctx, r.bucket, prefixIndex)
	if err != nil {
		return fmt.Errorf("list index: %w", err)
	}
	present := make(map[string]bool, len(objs))
	for _, o := range objs {
		if id, ok := objectName(o.Key, prefixIndex, 64); ok {
			present[id] = true
		}
	}
	r.idx.mu.RLock()
	rebuild := false
	var todo []string
	for f := range r.idx.files {
		if !present[f] {
			rebuild = true
		}
	}
	for f := range present {
		if rebuild || !r.idx.files[f] {
			todo = append(todo, f)
		}
	}
	r.idx.mu.RUnlock()
	if !rebuild && len(todo) == 0 {
		return nil
	}
	target := r.idx
	if rebuild {
		target = newMemIndex()
	}
	for _, f := range todo {
		packs, err := r.loadIndexFile(ctx, f)
		if err != nil {
			return err
		}
		target.addPacks(packs)
		target.mu.Lock()
		target.files[f] = true
		target.mu.Unlock()
	}
	if rebuild {
		r.idx.mu.Lock()
		r.idx.packs, r.idx.packNum, r.idx.chunks, r.idx.files = target.packs, target.packNum, target.chunks, target.files
		r.idx.mu.Unlock()
	}
	return nil
}
