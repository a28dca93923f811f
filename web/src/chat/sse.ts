// A Server-Sent Events parser for streams read with fetch (EventSource
// cannot POST). It follows the WHATWG event-stream rules that matter
// here: lines end in LF, CR or CRLF (also split across chunks), "data:"
// lines of one event are joined with LF, an empty line dispatches the
// event, ":" lines are comments (keep-alives), one space after the colon
// is dropped, and an unfinished event at the end of the stream is dropped.

/** SSEMessage is one dispatched event. */
export interface SSEMessage {
  /** event is the "event:" field, "message" when absent. */
  event: string;
  data: string;
  id?: string;
}

/**
 * SSEParser turns text chunks, cut anywhere, into events. push() returns
 * the events the chunk completed, in order.
 */
export class SSEParser {
  private buf = '';
  /** lastCR: the previous chunk ended in CR, so a leading LF is its pair. */
  private lastCR = false;
  private data: string[] = [];
  private event = '';
  private id: string | undefined;

  push(chunk: string): SSEMessage[] {
    // An empty chunk changes nothing (and must not forget a pending CR).
    if (chunk === '') return [];
    if (this.lastCR && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.lastCR = false;
    this.buf += chunk;
    const out: SSEMessage[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // A CR at the very end may be the first half of a CRLF.
      if (m[0] === '\r' && m.index === this.buf.length - 1) {
        this.lastCR = true;
      }
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      const ev = this.line(line);
      if (ev) out.push(ev);
    }
    return out;
  }

  /** end flushes the decoder state; an event without its blank line is dropped. */
  end(): SSEMessage[] {
    this.buf = '';
    this.data = [];
    this.event = '';
    return [];
  }

  private line(line: string): SSEMessage | undefined {
    if (line === '') {
      if (this.data.length === 0) {
        this.event = '';
        return undefined;
      }
      const ev: SSEMessage = { event: this.event || 'message', data: this.data.join('\n') };
      if (this.id !== undefined) ev.id = this.id;
      this.data = [];
      this.event = '';
      return ev;
    }
    if (line.startsWith(':')) return undefined; // comment / keep-alive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        break;
      case 'event':
        this.event = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.id = value;
        break;
      default: // retry and unknown fields are ignored
    }
    return undefined;
  }
}

/**
 * readSSE reads a fetch body as an event stream, yielding each event as
 * soon as its blank line arrives. Bytes are decoded as UTF-8 in streaming
 * mode, so a character split across chunks survives.
 */
export async function* readSSE(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<SSEMessage> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  const onAbort = () => void reader.cancel().catch(() => {});
  signal?.addEventListener('abort', onAbort);
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    yield* parser.push(decoder.decode());
    parser.end();
    finished = true;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // The consumer stopped early (or reading failed): let the server go.
    if (!finished) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
