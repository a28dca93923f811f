import { describe, expect, it } from 'vitest';
import { readSSE, SSEParser, type SSEMessage } from './sse';

/** feed pushes the chunks through one parser and returns every event. */
function feed(chunks: string[]): SSEMessage[] {
  const p = new SSEParser();
  return chunks.flatMap((c) => p.push(c));
}

/** splits returns every way of cutting s into two and three pieces. */
function splits(s: string): string[][] {
  const out: string[][] = [[s]];
  for (let i = 1; i < s.length; i++) {
    out.push([s.slice(0, i), s.slice(i)]);
    for (let j = i + 1; j < s.length; j++) out.push([s.slice(0, i), s.slice(i, j), s.slice(j)]);
  }
  return out;
}

const stream =
  ': keep-alive\n\n' +
  'data: {"type":"conversation","id":"cnv-1"}\n\n' +
  'data: first line\ndata: second line\n\n' +
  'event: note\r\ndata:no space\r\n\r\n' +
  ':ping\r' +
  'data: cr only\r\r' +
  'data: tail without blank line';

const want: SSEMessage[] = [
  { event: 'message', data: '{"type":"conversation","id":"cnv-1"}' },
  { event: 'message', data: 'first line\nsecond line' },
  { event: 'note', data: 'no space' },
  { event: 'message', data: 'cr only' },
];

describe('SSEParser', () => {
  it('parses a stream in one piece', () => {
    expect(feed([stream])).toEqual(want);
  });

  it('gives the same events wherever the chunks are cut', () => {
    for (const cut of splits(stream)) {
      expect(feed(cut), JSON.stringify(cut)).toEqual(want);
    }
  });

  it('keeps a pending CR across an empty chunk', () => {
    expect(feed(['data: a\r', '', '\ndata: b\r', '', '\n\r', '', '\n'])).toEqual([{ event: 'message', data: 'a\nb' }]);
  });

  it('parses a stream fed one character at a time', () => {
    expect(feed(stream.split(''))).toEqual(want);
  });

  it.each([
    ['blank lines alone dispatch nothing', '\n\n\n', []],
    ['a field without colon is an empty value', 'data\n\n', [{ event: 'message', data: '' }]],
    ['only one leading space is dropped', 'data:  two\n\n', [{ event: 'message', data: ' two' }]],
    ['unknown fields and retry are ignored', 'retry: 10\nfoo: bar\ndata: x\n\n', [{ event: 'message', data: 'x' }]],
    ['id is kept', 'id: 7\ndata: x\n\n', [{ event: 'message', data: 'x', id: '7' }]],
    ['an empty data line adds a newline', 'data: a\ndata:\ndata: b\n\n', [{ event: 'message', data: 'a\n\nb' }]],
  ])('%s', (_name, input, out) => {
    expect(feed([input])).toEqual(out);
  });
});

function body(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      for (const x of chunks) c.enqueue(x);
      c.close();
    },
  });
}

describe('readSSE', () => {
  it('decodes UTF-8 split inside a character', async () => {
    const bytes = new TextEncoder().encode('data: café ✓\n\n');
    const cut = bytes.indexOf(0xc3) + 1; // between the two bytes of é
    const got: SSEMessage[] = [];
    for await (const ev of readSSE(body([bytes.slice(0, cut), bytes.slice(cut)]))) got.push(ev);
    expect(got).toEqual([{ event: 'message', data: 'café ✓' }]);
  });

  it('yields each event before the stream ends', async () => {
    let ctl!: ReadableStreamDefaultController<Uint8Array>;
    const rs = new ReadableStream<Uint8Array>({ start: (c) => void (ctl = c) });
    const enc = new TextEncoder();
    const it = readSSE(rs);
    ctl.enqueue(enc.encode('data: one\n\nda'));
    expect((await it.next()).value).toEqual({ event: 'message', data: 'one' });
    ctl.enqueue(enc.encode('ta: two\n\n'));
    expect((await it.next()).value).toEqual({ event: 'message', data: 'two' });
    ctl.close();
    expect((await it.next()).done).toBe(true);
  });

  it('cancels the body when the reader stops early', async () => {
    let cancelled = false;
    const rs = new ReadableStream<Uint8Array>({
      start: (c) => c.enqueue(new TextEncoder().encode('data: one\n\ndata: two\n\n')),
      cancel: () => void (cancelled = true),
    });
    for await (const ev of readSSE(rs)) {
      expect(ev.data).toBe('one');
      break;
    }
    expect(cancelled).toBe(true);
  });
});

describe('SSEParser with empty chunks', () => {
  it('keeps a CR pending across an empty chunk (CR, "", LF is one line end)', () => {
    const p = new SSEParser();
    const out = [...p.push('data: a\r'), ...p.push(''), ...p.push('\ndata: b\n\n')];
    expect(out).toEqual([{ event: 'message', data: 'a\nb' }]);
  });
});
