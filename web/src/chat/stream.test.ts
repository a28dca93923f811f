import { afterEach, describe, expect, it, vi } from 'vitest';
import { postStream, type ChatEvent } from './stream';

afterEach(() => vi.unstubAllGlobals());

describe('postStream', () => {
  it('passes well-formed events and drops malformed ones', async () => {
    const body = [
      'data: {"type":"conversation","id":"cnv-1"}',
      'data: null',
      'data: {"type":7}',
      'data: {"type":"text","text":{"x":1}}',
      'data: {"type":"text","text":"hello"}',
      'data: {"type":"done"}',
      '',
      '',
    ].join('\n\n');
    vi.stubGlobal('fetch', async () => new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } }));
    const got: ChatEvent[] = [];
    await postStream('/v1/assistant/chat', { message: 'hi' }, (e) => got.push(e));
    expect(got.map((e) => e.type)).toEqual(['conversation', 'text', 'done']);
    expect((got[1] as { text: string }).text).toBe('hello');
  });
});
