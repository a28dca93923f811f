// Test helpers: render a page inside Mantine, a fixed session and a
// memory router, and answer the API from a table of handlers.
import { MantineProvider } from '@mantine/core';
import { render } from '@testing-library/react';
import type { ReactElement } from 'react';
import { vi } from 'vitest';
import { Router } from 'wouter';
import { memoryLocation } from 'wouter/memory-location';
import { SessionContext, type Session } from '../session';

export function session(over: Partial<Session> = {}): Session {
  return {
    me: { id: 'tok-1', name: 'ann', role: 'user', platform_role: '', orgs: { acme: 'owner' }, user: { id: 'usr-ann', email: 'ann@acme.example', created_at: '2026-01-01T00:00:00Z' } },
    loading: false,
    org: 'acme',
    setOrg: () => {},
    orgs: { acme: 'owner' },
    switchable: ['acme'],
    platform: false,
    operator: false,
    branding: {},
    refresh: async () => {},
    signOut: async () => {},
    ...over,
  };
}

export function renderPage(ui: ReactElement, opts: { path?: string; session?: Partial<Session> } = {}) {
  const loc = memoryLocation({ path: opts.path ?? '/', record: true });
  const r = render(
    <MantineProvider>
      <SessionContext.Provider value={session(opts.session)}>
        <Router hook={loc.hook} searchHook={loc.searchHook}>
          {ui}
        </Router>
      </SessionContext.Provider>
    </MantineProvider>,
  );
  return { ...r, location: loc };
}

export type Handler = (req: Request, url: URL) => Response | Promise<Response> | undefined;

/** json answers with a JSON body. */
export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

/**
 * mockAPI stubs fetch: each request goes to the first handler returning a
 * Response; an unhandled request fails the test loudly. It returns the
 * list of requests made, for assertions.
 */
export function mockAPI(...handlers: Handler[]) {
  const calls: { method: string; path: string; body: string }[] = [];
  vi.stubGlobal('fetch', async (input: RequestInfo, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(input, init);
    const url = new URL(req.url, 'http://localhost');
    const body = req.method === 'GET' ? '' : await req.clone().text();
    calls.push({ method: req.method, path: url.pathname + url.search, body });
    for (const h of handlers) {
      const r = await h(req, url);
      if (r) return r;
    }
    throw new Error(`unhandled API call ${req.method} ${url.pathname}${url.search}`);
  });
  return calls;
}

/** route matches a method and path (a string or RegExp) to a response. */
export function route(method: string, path: string | RegExp, reply: (req: Request, url: URL) => Response | Promise<Response>): Handler {
  return (req, url) => {
    if (req.method !== method) return undefined;
    if (typeof path === 'string' ? url.pathname !== path : !path.test(url.pathname)) return undefined;
    return reply(req, url);
  };
}
