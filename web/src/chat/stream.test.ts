import { afterEach, describe, expect, it, vi } from 'vitest';
import { APIError } from '../api/client';
import { reduce, empty } from './conversation';
import { checkEvent, postStream, type ChatEvent } from './stream';

afterEach(() => vi.unstubAllGlobals());

function answer(body: string, type: string | null) {
  const headers: Record<string, string> = type === null ? {} : { 'Content-Type': type };
  vi.stubGlobal('fetch', async () => new Response(body, { headers }));
}

async function events(): Promise<ChatEvent[]> {
  const got: ChatEvent[] = [];
  await postStream('/v1/assistant/chat', { message: 'hi' }, (e) => got.push(e));
  return got;
}

describe('postStream', () => {
  it.each([['application/json'], ['text/html; charset=utf-8'], [null]])('refuses an answer of type %s', async (type) => {
    answer('data: {"type":"text","text":"hi"}\n\n', type);
    const err = await events().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).message).toMatch(/not an event stream/);
  });

  it('accepts text/event-stream with parameters', async () => {
    answer('data: {"type":"text","text":"hi"}\n\n', 'text/event-stream; charset=utf-8');
    expect(await events()).toEqual([{ type: 'text', text: 'hi' }]);
  });

  it('skips events without a string type and text events without string text', async () => {
    answer(
      ['{"text":"no type"}', '{"type":7}', '"just a string"', 'null', '{"type":"text"}', '{"type":"text","text":42}', '{"type":"text","text":"ok"}']
        .map((d) => `data: ${d}\n\n`)
        .join(''),
      'text/event-stream',
    );
    const got = await events();
    expect(got).toEqual([{ type: 'text', text: 'ok' }]);
    const s = got.reduce((st, ev) => reduce(st, { type: 'event', ev }), empty);
    expect(s.items).toEqual([{ kind: 'assistant', key: 0, text: 'ok' }]);
  });
});

describe('checkEvent and the reducer', () => {
  it('never appends "undefined" to the assistant text', () => {
    let s = reduce(empty, { type: 'event', ev: { type: 'text', text: 'Hello' } });
    s = reduce(s, { type: 'event', ev: { type: 'text' } as unknown as ChatEvent });
    expect(s.items).toEqual([{ kind: 'assistant', key: 0, text: 'Hello' }]);
    expect(checkEvent({ type: 'text' })).toBeNull();
    expect(checkEvent({ type: 'error' })).toEqual({ type: 'error', message: 'the assistant reported an error' });
  });
});

describe('postStream filtering', () => {
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
