import { configure, act, fireEvent, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { json, mockAPI, renderPage, route } from '../test/render';
import { ROW_HEIGHT, type SiteRow } from '../components/SitesTable';
import Sites, { sitesPath } from './Sites';

// jsdom does not scroll; the window virtualiser asks it to.
beforeEach(() => {
  window.scrollTo = vi.fn() as unknown as typeof window.scrollTo;
});
// A ceiling for slow, shared machines, not a performance target.
vi.setConfig({ testTimeout: 30000 });
configure({ asyncUtilTimeout: 5000 });
afterEach(() => {
  vi.unstubAllGlobals();
  Object.defineProperty(window, 'scrollY', { value: 0, configurable: true });
});

function site(i: number, over: Partial<SiteRow> = {}): SiteRow {
  const name = `site${String(i).padStart(5, '0')}.localhost`;
  return {
    metadata: { name, uid: `uid-${i}`, generation: 1, created_at: '2026-12-01T00:00:00Z', resource_version: i, org: 'acme' },
    spec: { domain: name, title: `Site ${i}`, plan: 'basic' },
    status: { phase: 'Ready', shard: 'shard-1', url: `http://${name}` },
    ...over,
  };
}

/** serve answers GET /v1/sites from all, paging by offset like the API. */
function serve(all: SiteRow[]) {
  return route('GET', '/v1/sites', (_req, url) => {
    const q = url.searchParams.get('q') ?? '';
    const list = q ? all.filter((s) => s.metadata.name.includes(q)) : all;
    const from = Number(url.searchParams.get('continue') ?? '0');
    const limit = Number(url.searchParams.get('limit') ?? '100');
    const items = list.slice(from, from + limit);
    const next = from + limit < list.length ? String(from + limit) : undefined;
    return json({ items, revision: 1, ...(next ? { continue: next } : {}) });
  });
}

describe('Sites', () => {
  it('lists sites with their status, organisation, shard, plan, URL, last backup and cache hits', async () => {
    const hourAgo = new Date(Date.now() - 3600_000).toISOString();
    const calls = mockAPI(
      serve([
        site(1, { summary: { last_backup: hourAgo, cache_hit_ratio: 0.75 } }),
        site(2, { status: { phase: 'Creating', shard: 'shard-2' } }),
      ]),
    );
    renderPage(<Sites />, { path: '/sites' });
    const link = await screen.findByRole('link', { name: 'site00001.localhost' });
    expect(link).toHaveAttribute('href', '/sites/site00001.localhost');
    const rows = screen.getAllByTestId('site-row');
    const first = within(rows[0]);
    expect(first.getByText('Ready')).toBeInTheDocument();
    expect(first.getByText('acme')).toBeInTheDocument();
    expect(first.getByText('shard-1')).toBeInTheDocument();
    expect(first.getByText('basic')).toBeInTheDocument();
    expect(first.getByRole('link', { name: /Open site00001.localhost/ })).toHaveAttribute('href', 'http://site00001.localhost');
    expect(first.getByText('1 hour ago')).toBeInTheDocument();
    expect(first.getByText('75 %')).toBeInTheDocument();
    expect(within(rows[1]).getByText('Creating')).toBeInTheDocument();
    expect(screen.getByTestId('sites-count')).toHaveTextContent('2 sites');
    // The session's organisation filters the list.
    expect(calls[0].path).toBe('/v1/sites?limit=100&org=acme');
  });

  it('does not link a site URL that is not http(s)', async () => {
    mockAPI(serve([site(1, { status: { phase: 'Ready', shard: 'shard-1', url: 'javascript:alert(1)' } })]));
    const { container } = renderPage(<Sites />, { path: '/sites' });
    await screen.findByRole('link', { name: 'site00001.localhost' });
    const row = within(screen.getAllByTestId('site-row')[0]);
    expect(row.queryByRole('link', { name: /Open site00001.localhost/ })).toBeNull();
    expect(row.getByText('javascript:alert(1)')).toBeInTheDocument();
    expect(container.querySelectorAll('a[href^="javascript"]')).toHaveLength(0);
  });

  it('reads an unknown backup time and cache ratio as "unknown", not a dash', async () => {
    mockAPI(serve([site(1)]));
    renderPage(<Sites />, { path: '/sites' });
    await screen.findByRole('link', { name: 'site00001.localhost' });
    const row = screen.getAllByTestId('site-row')[0];
    expect(within(row).getAllByText('unknown')).toHaveLength(2);
    expect(row.querySelector('[aria-label="unknown"]')).toBeNull();
  });

  it('renders 5,000 sites, loaded progressively, with only a window of rows in the DOM', async () => {
    const all = Array.from({ length: 5000 }, (_, i) => site(i));
    const calls = mockAPI(serve(all));
    renderPage(<Sites />, { path: '/sites', session: { org: '', platform: true } });
    await waitFor(() => expect(screen.getByTestId('sites-count')).toHaveTextContent('5,000 sites'), { timeout: 20000 });
    // A first small page, then pages of 1000 until the end.
    expect(calls.map((c) => c.path)).toEqual([
      '/v1/sites?limit=100',
      '/v1/sites?limit=1000&continue=100',
      '/v1/sites?limit=1000&continue=1100',
      '/v1/sites?limit=1000&continue=2100',
      '/v1/sites?limit=1000&continue=3100',
      '/v1/sites?limit=1000&continue=4100',
    ]);
    const rows = screen.getAllByTestId('site-row');
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.length).toBeLessThan(100);
    expect(screen.getByRole('link', { name: 'site00000.localhost' })).toBeInTheDocument();
    expect(screen.queryByRole('link', { name: 'site04999.localhost' })).toBeNull();
    expect(screen.getByRole('table', { name: 'Sites' })).toHaveAttribute('aria-rowcount', '5001');
    // Scrolling far down swaps the window: later rows in, the first ones out.
    act(() => {
      Object.defineProperty(window, 'scrollY', { value: ROW_HEIGHT * 2500, configurable: true });
      fireEvent.scroll(window);
    });
    expect(await screen.findByRole('link', { name: 'site02500.localhost' })).toBeInTheDocument();
    expect(screen.queryByRole('link', { name: 'site00000.localhost' })).toBeNull();
    expect(screen.getAllByTestId('site-row').length).toBeLessThan(100);
  }, 30000);

  it('searches on the server, debounced', async () => {
    const calls = mockAPI(serve([site(1), site(2), site(12)]));
    renderPage(<Sites />, { path: '/sites' });
    await screen.findByRole('link', { name: 'site00002.localhost' });
    await userEvent.type(screen.getByLabelText('Search sites'), '0001');
    await waitFor(() => expect(screen.queryByRole('link', { name: 'site00002.localhost' })).toBeNull());
    expect(screen.getByRole('link', { name: 'site00001.localhost' })).toBeInTheDocument();
    expect(screen.getByRole('link', { name: 'site00012.localhost' })).toBeInTheDocument();
    // One request for the whole typed word, not one per key.
    expect(calls.map((c) => c.path)).toEqual(['/v1/sites?limit=100&org=acme', '/v1/sites?limit=100&org=acme&q=0001']);
  });

  it('explains how to create the first site, and the button goes to /sites/new', async () => {
    mockAPI(serve([]));
    const { location } = renderPage(<Sites />, { path: '/sites' });
    expect(await screen.findByText('No sites yet')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Create site' }));
    expect(location.history).toContain('/sites/new');
  });

  it("shows the server's message when listing fails", async () => {
    mockAPI(route('GET', '/v1/sites', () => json({ error: { code: 'not_found', message: 'organisation "zzz" not found' } }, 404)));
    renderPage(<Sites />, { path: '/sites', session: { org: 'zzz' } });
    expect(await screen.findByRole('alert')).toHaveTextContent('organisation "zzz" not found');
    expect(screen.queryByText('No sites yet')).toBeNull();
  });

  it('builds list requests', () => {
    expect(sitesPath({ org: '', q: '', limit: 100 })).toBe('/v1/sites?limit=100');
    expect(sitesPath({ org: 'acme', q: 'blog', limit: 1000, cont: 'abc' })).toBe('/v1/sites?limit=1000&org=acme&q=blog&continue=abc');
  });
});
