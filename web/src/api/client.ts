// The typed API client. Types come from ../internal/api/openapi.yaml
// (npm run gen writes schema.d.ts); the browser's session cookie
// (aipress_session) authenticates every call.
import createClient from 'openapi-fetch';
import type { paths, components } from './schema';

export type Schemas = components['schemas'];
export type Site = Schemas['Site'];
export type Job = Schemas['Job'];
export type WhoAmI = Schemas['WhoAmI'];
export type Org = Schemas['Org'];
export type Branding = Schemas['Branding'];

// fetch is looked up per call so tests can stub globalThis.fetch.
export const api = createClient<paths>({
  baseUrl: typeof location === 'undefined' ? '' : location.origin,
  credentials: 'same-origin',
  fetch: (r: Request) => globalThis.fetch(r),
  // The audit log records which channel a call came through.
  headers: { 'X-AIPress-Channel': 'portal' },
});

/** APIError is an API error body ({"error":{"code","message"}}) with its status. */
export class APIError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * must returns a call's data or throws an APIError carrying the server's
 * safe message, so pages can show it as is.
 */
export async function must<T>(
  p: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await p;
  if (error !== undefined || !response.ok) {
    const e = (error as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new APIError(response.status, e?.code ?? 'error', e?.message ?? `${response.status} ${response.statusText}`);
  }
  return data as T;
}

/** errorText turns anything thrown into a sentence for the user. */
export function errorText(e: unknown): string {
  if (e instanceof APIError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * raw calls an endpoint that schema.d.ts does not describe yet (or whose
 * reply is not JSON-typed there) and returns its JSON body, throwing an
 * APIError on a non-2xx answer.
 */
export async function raw<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, credentials: 'same-origin', headers: { 'X-AIPress-Channel': 'portal' } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
  }
  const base = typeof location === 'undefined' ? 'http://localhost' : location.origin;
  const res = await globalThis.fetch(new Request(new URL(path, base), init));
  const text = await res.text();
  let data: unknown = undefined;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    const e = (data as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new APIError(res.status, e?.code ?? 'error', e?.message ?? `${res.status} ${res.statusText}`);
  }
  return data as T;
}
