import { describe, expect, it } from 'vitest';
import { empty, isWrite, load, reduce, save, STORAGE_KEY, type Action, type ChatState } from './conversation';
import type { ChatEvent } from './stream';

const ev = (e: ChatEvent): Action => ({ type: 'event', ev: e });

describe('reduce', () => {
  it('keeps the conversation id and joins text chunks into one bubble', () => {
    const s = [
      { type: 'user', text: 'hi' } as Action,
      ev({ type: 'conversation', id: 'cnv-1' }),
      ev({ type: 'text', text: 'Hel' }),
      ev({ type: 'text', text: 'lo' }),
      ev({ type: 'done' }),
    ].reduce(reduce, empty);
    expect(s.conversation).toBe('cnv-1');
    expect(s.items.map((i) => [i.kind, 'text' in i ? i.text : ''])).toEqual([
      ['user', 'hi'],
      ['assistant', 'Hello'],
    ]);
  });

  it('puts a tool result on the newest unfinished card of its id', () => {
    const s = [
      ev({ type: 'tool_call', id: 'call-1', tool: 'listSites', args: {} }),
      ev({ type: 'tool_result', id: 'call-1', tool: 'listSites', status: 200, result: { items: [] } }),
      ev({ type: 'tool_call', id: 'call-1', tool: 'createBackup', args: { name: 'blog' } }),
      ev({ type: 'tool_result', id: 'call-1', tool: 'createBackup', status: 500, error: 'boom' }),
    ].reduce(reduce, empty);
    expect(s.items).toMatchObject([
      { kind: 'tool', tool: 'listSites', done: true, status: 200, result: { items: [] } },
      { kind: 'tool', tool: 'createBackup', args: { name: 'blog' }, done: true, status: 500, error: 'boom' },
    ]);
  });

  it('a text after a tool card starts a new bubble', () => {
    const s = [ev({ type: 'text', text: 'a' }), ev({ type: 'tool_call', id: 'c', tool: 'getSite' }), ev({ type: 'text', text: 'b' })].reduce(reduce, empty);
    expect(s.items.map((i) => i.kind)).toEqual(['assistant', 'tool', 'assistant']);
  });

  it('marks proposals and leaves no card running after the stream ends', () => {
    let s = [
      ev({ type: 'proposal', id: 'prp-1', tool: 'deleteSite', args: { name: 'b' }, summary: 'Delete site b' }),
      ev({ type: 'tool_call', id: 'c', tool: 'getSite' }),
      { type: 'end' } as Action,
    ].reduce(reduce, empty);
    expect(s.items[1]).toMatchObject({ done: true, error: 'no result (the stream ended)' });
    s = reduce(s, { type: 'proposal', id: 'prp-1', state: 'cancelled' });
    expect(s.items[0]).toMatchObject({ kind: 'proposal', state: 'cancelled' });
  });

  it('reset forgets everything but keeps keys unique', () => {
    const s = reduce([{ type: 'user', text: 'x' } as Action, ev({ type: 'conversation', id: 'cnv-1' })].reduce(reduce, empty), { type: 'reset' });
    expect(s).toEqual({ conversation: '', items: [], seq: 1 });
  });
});

describe('storage', () => {
  it('round-trips and reopens a proposal left confirming', () => {
    const st = new Map<string, string>();
    const storage = { getItem: (k: string) => st.get(k) ?? null, setItem: (k: string, v: string) => void st.set(k, v) } as Storage;
    const s: ChatState = {
      conversation: 'cnv-9',
      seq: 2,
      items: [
        { kind: 'user', key: 0, text: 'delete b' },
        { kind: 'proposal', key: 1, id: 'prp-1', tool: 'deleteSite', args: {}, summary: 'Delete b', state: 'confirming' },
      ],
    };
    save(s, storage);
    expect(JSON.parse(st.get(STORAGE_KEY)!).conversation).toBe('cnv-9');
    const back = load(storage);
    expect(back.conversation).toBe('cnv-9');
    expect(back.items[1]).toMatchObject({ state: 'open' });
  });

  it('starts empty on garbage', () => {
    const storage = { getItem: () => '{not json' } as unknown as Storage;
    expect(load(storage)).toEqual(empty);
  });
});

describe('isWrite', () => {
  it.each([
    ['listSites', false],
    ['getJob', false],
    ['whoami', false],
    ['createBackup', true],
    ['purgeSite', true],
    ['deleteSite', true],
  ])('%s → %s', (tool, want) => expect(isWrite(tool)).toBe(want));
});
