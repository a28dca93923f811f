package repo

import (
	"context"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Pack format: the sealed chunks one after another, then the sealed
// header, then the header's sealed length as 4 bytes little-endian:
//
//	chunk_1 || ... || chunk_n || seal(header) || uint32le(len(seal(header)))
//
// A sealed chunk is nonce || AES-256-GCM(flag || payload, aad = chunk id),
// flag 0 for stored, 1 for zstd. Binding the id as additional data means a
// chunk cannot be passed off under another id even before its plaintext is
// hashed again. The header lists (id, sealed length, plaintext length) per
// chunk, so an index can be rebuilt from the packs alone.
const (
	flagStored = 0
	flagZstd   = 1
)

// packBuilder collects sealed chunks into a pack. The chunks are kept as
// they were sealed (not copied into one buffer) and written one after the
// other when the pack is uploaded.
type packBuilder struct {
	parts  [][]byte
	size   int // bytes of the sealed chunks so far
	chunks []packChunk
}

func (p *packBuilder) add(id ChunkID, sealed []byte, rawLen int) {
	p.chunks = append(p.chunks, packChunk{id: id, offset: uint32(p.size), length: uint32(len(sealed)), rawLen: uint32(rawLen)})
	p.parts = append(p.parts, sealed)
	p.size += len(sealed)
}

// finish appends the header and returns the pack's bytes (in parts, to be
// written in order), its total size and its entries.
func (p *packBuilder) finish(aead cipher.AEAD) ([][]byte, int64, packEntries) {
	hdr := make([]byte, 0, len(p.chunks)*(32+10))
	for _, c := range p.chunks {
		hdr = append(hdr, c.id[:]...)
		hdr = binary.AppendUvarint(hdr, uint64(c.length))
		hdr = binary.AppendUvarint(hdr, uint64(c.rawLen))
	}
	tail := seal(aead, make([]byte, 0, nonceSize+len(hdr)+tagSize+4), hdr, []byte(aadHeader))
	tail = binary.LittleEndian.AppendUint32(tail, uint32(len(tail)))
	parts := append(p.parts, tail)
	h := sha256.New()
	var size int64
	for _, part := range parts {
		h.Write(part)
		size += int64(len(part))
	}
	e := packEntries{chunks: p.chunks}
	h.Sum(e.id[:0])
	return parts, size, e
}

// sealChunk compresses (if that helps) and encrypts one chunk. The result
// is allocated to its exact size (it stays in a pack until uploaded); the
// compression goes through a pooled scratch buffer, replaced by one of
// this chunk's bound when it is smaller.
func (r *Repo) sealChunk(id ChunkID, data []byte) []byte {
	sp := r.getScratch()
	if need := scratchSize(len(data)); cap(*sp) < need {
		*sp = make([]byte, 0, need)
	}
	payload := append((*sp)[:0], flagZstd)
	payload = r.enc.encodeAll(data, payload)
	if len(payload) >= len(data)+1 {
		payload = append(append(payload[:0], flagStored), data...)
	}
	sealed := seal(r.keys.aead, make([]byte, 0, len(payload)+overhead), payload, id[:])
	*sp = payload
	r.scratch.Put(sp)
	return sealed
}

func (r *Repo) getScratch() *[]byte {
	if sp, ok := r.scratch.Get().(*[]byte); ok {
		return sp
	}
	return new([]byte)
}

// scratchSize bounds the flag byte and zstd frame of n bytes (zstd's
// worst case is n plus a little per 128 KiB block).
func scratchSize(n int) int { return 1 + n + n/64 + 1024 }

// openChunk decrypts, decompresses and checks one sealed chunk.
func (r *Repo) openChunk(id ChunkID, sealed []byte, rawLen uint32) ([]byte, error) {
	payload, err := open(r.keys.aead, nil, sealed, id[:])
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", id, err)
	}
	if len(payload) == 0 {
		return nil, fmt.Errorf("chunk %s: %w: empty", id, ErrCorrupt)
	}
	var data []byte
	switch payload[0] {
	case flagStored:
		data = payload[1:]
	case flagZstd:
		data, err = r.dec.DecodeAll(payload[1:], make([]byte, 0, rawLen))
		if err != nil {
			return nil, fmt.Errorf("chunk %s: %w: decompress: %v", id, ErrCorrupt, err)
		}
	default:
		return nil, fmt.Errorf("chunk %s: %w: unknown flag %d", id, ErrCorrupt, payload[0])
	}
	if uint32(len(data)) != rawLen || r.keys.chunkID(data) != id {
		return nil, fmt.Errorf("chunk %s: %w: content does not match its id", id, ErrCorrupt)
	}
	return data, nil
}

// readChunk fetches one chunk from its pack.
func (r *Repo) readChunk(ctx context.Context, id ChunkID) ([]byte, error) {
	pack, loc, ok := r.idx.lookup(id)
	if !ok {
		return nil, fmt.Errorf("chunk %s: %w: not in the index", id, ErrCorrupt)
	}
	rd, err := r.bucket.NewRangeReader(ctx, packKey(pack), int64(loc.offset), int64(loc.length), nil)
	if err != nil {
		return nil, fmt.Errorf("read chunk %s from %s: %w", id, packKey(pack), err)
	}
	defer rd.Close()
	sealed := make([]byte, loc.length)
	if _, err := io.ReadFull(rd, sealed); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("chunk %s in %s: %w: pack too short", id, packKey(pack), ErrCorrupt)
		}
		return nil, fmt.Errorf("read chunk %s from %s: %w", id, packKey(pack), err)
	}
	data, err := r.openChunk(id, sealed, loc.rawLen)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", packKey(pack), err)
	}
	return data, nil
}

// parsePackHeader reads the chunk list of a whole pack's bytes.
func (r *Repo) parsePackHeader(data []byte) ([]packChunk, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("%w: pack too short", ErrCorrupt)
	}
	hl := int(binary.LittleEndian.Uint32(data[len(data)-4:]))
	if hl > len(data)-4 {
		return nil, fmt.Errorf("%w: bad pack header length", ErrCorrupt)
	}
	hdr, err := open(r.keys.aead, nil, data[len(data)-4-hl:len(data)-4], []byte(aadHeader))
	if err != nil {
		return nil, fmt.Errorf("pack header: %w", err)
	}
	var out []packChunk
	off := uint32(0)
	for len(hdr) > 0 {
		if len(hdr) < 32 {
			return nil, fmt.Errorf("%w: bad pack header", ErrCorrupt)
		}
		var c packChunk
		copy(c.id[:], hdr)
		hdr = hdr[32:]
		l, n := binary.Uvarint(hdr)
		if n <= 0 {
			return nil, fmt.Errorf("%w: bad pack header", ErrCorrupt)
		}
		hdr = hdr[n:]
		raw, n := binary.Uvarint(hdr)
		if n <= 0 {
			return nil, fmt.Errorf("%w: bad pack header", ErrCorrupt)
		}
		hdr = hdr[n:]
		c.offset, c.length, c.rawLen = off, uint32(l), uint32(raw)
		off += uint32(l)
		out = append(out, c)
	}
	return out, nil
}
