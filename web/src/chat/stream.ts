// The assistant's wire contract (docs/api.md, "Assistant") and the calls
// that stream its events: POST /v1/assistant/chat and /confirm answer with
// text/event-stream, one JSON object per "data:" event.
import { APIError, raw } from '../api/client';
import { readSSE } from './sse';

/** AssistantInfo is GET /v1/assistant. */
export interface AssistantInfo {
  provider: string;
  model?: string;
  confirm_required?: boolean;
  rate_limit_per_minute?: number;
}

/** ChatEvent is one event of a chat or confirm stream. */
export type ChatEvent =
  | { type: 'conversation'; id: string }
  | { type: 'text'; text: string }
  | { type: 'tool_call'; id: string; tool: string; args?: Record<string, unknown> }
  | { type: 'tool_result'; id: string; tool: string; status?: number; result?: unknown; error?: string }
  | { type: 'proposal'; id: string; tool: string; args?: Record<string, unknown>; summary: string }
  | { type: 'error'; message: string }
  | { type: 'done' };

/** RateLimited is a 429 answer; retryAfter is in seconds (0 if unknown). */
export class RateLimited extends APIError {
  constructor(
    public retryAfter: number,
    message: string,
  ) {
    super(429, 'rate_limited', message);
  }
}

export function getAssistant(): Promise<AssistantInfo> {
  return raw<AssistantInfo>('GET', '/v1/assistant');
}

export function cancelProposal(conversation: string, proposal: string): Promise<void> {
  return raw<void>('POST', '/v1/assistant/cancel', { conversation, proposal });
}

/** retryAfterSeconds reads Retry-After: delta seconds or an HTTP date. */
export function retryAfterSeconds(v: string | null, now: number = Date.now()): number {
  if (!v) return 0;
  const s = v.trim();
  if (/^\d+$/.test(s)) return parseInt(s, 10);
  const t = Date.parse(s);
  return Number.isNaN(t) ? 0 : Math.max(0, Math.ceil((t - now) / 1000));
}

/**
 * checkEvent returns v as a ChatEvent, or null for what is not one (no
 * string type; a text event without string text), which is skipped.
 */
export function checkEvent(v: unknown): ChatEvent | null {
  if (typeof v !== 'object' || v === null) return null;
  const e = v as { type?: unknown; text?: unknown; message?: unknown };
  if (typeof e.type !== 'string') return null;
  if (e.type === 'text' && typeof e.text !== 'string') return null;
  if (e.type === 'error' && typeof e.message !== 'string') return { type: 'error', message: 'the assistant reported an error' };
  return v as ChatEvent;
}

/**
 * postStream POSTs body as JSON to path and calls onEvent for each event
 * of the reply as it arrives. A non-2xx answer throws an APIError with the
 * server's message (RateLimited for 429). An event whose data is not JSON
 * is reported as an error event rather than ending the stream.
 */
export async function postStream(
  path: string,
  body: unknown,
  onEvent: (e: ChatEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const base = typeof location === 'undefined' ? 'http://localhost' : location.origin;
  const res = await globalThis.fetch(
    new Request(new URL(path, base), {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify(body),
      signal,
    }),
  );
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`.trim();
    let code = 'error';
    try {
      const e = (JSON.parse(await res.text()) as { error?: { code?: string; message?: string } }).error;
      if (e?.message) msg = e.message;
      if (e?.code) code = e.code;
    } catch {
      // not JSON: keep the status line
    }
    if (res.status === 429) throw new RateLimited(retryAfterSeconds(res.headers.get('Retry-After')), msg);
    throw new APIError(res.status, code, msg);
  }
  if (!res.body) throw new APIError(res.status, 'error', 'the assistant sent no stream');
  const type = res.headers.get('Content-Type') ?? '';
  if (!/^text\/event-stream\s*(;|$)/i.test(type)) {
    await res.body.cancel().catch(() => {});
    throw new APIError(res.status, 'error', `the assistant answered with ${type || 'no content type'}, not an event stream`);
  }
  for await (const m of readSSE(res.body, signal)) {
    let ev: ChatEvent | null;
    try {
      ev = checkEvent(JSON.parse(m.data));
    } catch {
      ev = { type: 'error', message: `unreadable event from the assistant: ${m.data.slice(0, 80)}` };
    }
    if (ev) onEvent(ev);
  }
}
