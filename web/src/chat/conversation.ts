// The chat panel's state: the conversation id and what the log shows,
// built from the user's messages and the assistant's stream events by a
// pure reducer (so it is tested without a browser), and kept in
// sessionStorage so a reload or closing the panel keeps the conversation.
import type { ChatEvent } from './stream';

export type Args = Record<string, unknown>;

export type ProposalState = 'open' | 'confirming' | 'confirmed' | 'cancelling' | 'cancelled' | 'failed';

export type Item =
  | { kind: 'user'; key: number; text: string }
  | { kind: 'assistant'; key: number; text: string }
  | { kind: 'tool'; key: number; id: string; tool: string; args: Args; done: boolean; status?: number; result?: unknown; error?: string }
  | { kind: 'proposal'; key: number; id: string; tool: string; args: Args; summary: string; state: ProposalState; error?: string }
  | { kind: 'error'; key: number; message: string };

export interface ChatState {
  /** conversation is the server's id ('' until the first answer). */
  conversation: string;
  items: Item[];
  /** seq numbers items for React keys. */
  seq: number;
}

export type Action =
  | { type: 'user'; text: string }
  | { type: 'event'; ev: ChatEvent }
  | { type: 'proposal'; id: string; state: ProposalState; error?: string }
  | { type: 'failure'; message: string }
  | { type: 'end' }
  | { type: 'forget' }
  | { type: 'reset' };

export const empty: ChatState = { conversation: '', items: [], seq: 0 };

/** isWrite says whether a tool may change something (lists should refresh). */
export function isWrite(tool: string): boolean {
  return !/^(list|get|show|describe|search|whoami)/i.test(tool);
}

/** NewItem is an Item before it has its key. */
type NewItem = Item extends infer T ? (T extends Item ? Omit<T, 'key'> : never) : never;

function add(s: ChatState, it: NewItem): ChatState {
  return { ...s, items: [...s.items, { ...it, key: s.seq } as Item], seq: s.seq + 1 };
}

function event(s: ChatState, ev: ChatEvent): ChatState {
  switch (ev.type) {
    case 'conversation':
      return { ...s, conversation: ev.id };
    case 'text': {
      if (typeof ev.text !== 'string') return s;
      const last = s.items[s.items.length - 1];
      if (last?.kind === 'assistant') {
        return { ...s, items: [...s.items.slice(0, -1), { ...last, text: last.text + ev.text }] };
      }
      return add(s, { kind: 'assistant', text: ev.text });
    }
    case 'tool_call':
      return add(s, { kind: 'tool', id: ev.id, tool: ev.tool, args: ev.args ?? {}, done: false });
    case 'tool_result': {
      // The newest unfinished card of that id (ids may repeat across streams).
      let i = s.items.length - 1;
      for (; i >= 0; i--) {
        const it = s.items[i];
        if (it.kind === 'tool' && it.id === ev.id && !it.done) break;
      }
      const res = { done: true, status: ev.status, result: ev.result, error: ev.error || undefined };
      if (i < 0) return add(s, { kind: 'tool', id: ev.id, tool: ev.tool, args: {}, ...res });
      const items = s.items.slice();
      items[i] = { ...(items[i] as Extract<Item, { kind: 'tool' }>), ...res };
      return { ...s, items };
    }
    case 'proposal':
      return add(s, { kind: 'proposal', id: ev.id, tool: ev.tool, args: ev.args ?? {}, summary: ev.summary, state: 'open' });
    case 'error':
      return add(s, { kind: 'error', message: ev.message });
    case 'done':
      return s;
    default:
      return s;
  }
}

export function reduce(s: ChatState, a: Action): ChatState {
  switch (a.type) {
    case 'user':
      return add(s, { kind: 'user', text: a.text });
    case 'event':
      return event(s, a.ev);
    case 'proposal':
      return {
        ...s,
        items: s.items.map((it) => (it.kind === 'proposal' && it.id === a.id ? { ...it, state: a.state, error: a.error } : it)),
      };
    case 'failure':
      return add(s, { kind: 'error', message: a.message });
    case 'end':
      // A stream that stopped early leaves no card spinning for ever.
      return {
        ...s,
        items: s.items.map((it) => (it.kind === 'tool' && !it.done ? { ...it, done: true, error: it.error ?? 'no result (the stream ended)' } : it)),
      };
    case 'forget':
      return { ...s, conversation: '' };
    case 'reset':
      return { ...empty, seq: s.seq };
  }
}

export const STORAGE_KEY = 'aipress.assistant';

/** load reads the saved conversation (empty when none or unreadable). */
export function load(storage: Storage | undefined = globalThis.sessionStorage): ChatState {
  try {
    const v = JSON.parse(storage?.getItem(STORAGE_KEY) ?? 'null') as ChatState | null;
    if (v && typeof v.conversation === 'string' && Array.isArray(v.items) && typeof v.seq === 'number') {
      // A confirmation or cancellation cut short by the reload is open again.
      const items = v.items.map((it) =>
        it.kind === 'proposal' && (it.state === 'confirming' || it.state === 'cancelling') ? { ...it, state: 'open' as const } : it,
      );
      return { ...v, items };
    }
  } catch {
    // unreadable: start afresh
  }
  return empty;
}

/** save keeps the conversation; a full storage only loses the log, not the chat. */
export function save(s: ChatState, storage: Storage | undefined = globalThis.sessionStorage): void {
  try {
    storage?.setItem(STORAGE_KEY, JSON.stringify(s));
  } catch {
    try {
      storage?.setItem(STORAGE_KEY, JSON.stringify({ ...empty, conversation: s.conversation, seq: s.seq }));
    } catch {
      // no storage at all
    }
  }
}
