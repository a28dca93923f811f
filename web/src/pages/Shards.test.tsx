import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { json, mockAPI, renderPage, route } from '../test/render';
import Shards, { POLL_MS } from './Shards';

afterEach(() => vi.unstubAllGlobals());

const shard = (name: string, over: Record<string, unknown> = {}) => ({
  name,
  capacity: 10,
  cordoned: false,
  draining: false,
  phase: 'Ready',
  created_at: '2026-01-01T00:00:00Z',
  resource_version: 1,
  last_heartbeat: new Date().toISOString(),
  usage: { sites: 4, serving: 4, disk_bytes: 2e9, memory_bytes: 1e9 },
  ...over,
});

const ops = { platform: true, operator: true, orgs: {}, org: '' };

describe('Shards', () => {
  it('lists shards with capacity and state, and cordons after confirmation', async () => {
    let cordoned = false;
    const calls = mockAPI(
      route('GET', '/v1/shards', () => json({ items: [shard('shard-1', { cordoned }), shard('shard-2', { phase: 'Unhealthy', phase_reason: 'no heartbeat for 2m' })] })),
      route('POST', '/v1/shards/shard-1/cordon', () => {
        cordoned = true;
        return json(shard('shard-1', { cordoned: true }));
      }),
    );
    renderPage(<Shards />, { path: '/admin/shards', session: ops });
    const rows = await screen.findAllByTestId('shard-row');
    expect(rows).toHaveLength(2);
    expect(within(rows[0]).getByRole('progressbar', { name: 'Capacity of shard-1' })).toHaveAttribute('aria-valuenow', '40');
    expect(within(rows[1]).getByText('Unhealthy')).toBeInTheDocument();
    await userEvent.click(within(rows[0]).getByRole('button', { name: 'Cordon' }));
    const dlg = await screen.findByRole('dialog', { name: 'Cordon shard-1' });
    await userEvent.click(within(dlg).getByRole('button', { name: 'Cordon' }));
    await waitFor(() => expect(within(screen.getAllByTestId('shard-row')[0]).getByText('cordoned')).toBeInTheDocument());
    expect(calls.some((c) => c.method === 'POST' && c.path === '/v1/shards/shard-1/cordon')).toBe(true);
    expect(within(screen.getAllByTestId('shard-row')[0]).getByRole('button', { name: 'Uncordon' })).toBeInTheDocument();
  });

  it('shows a refused drain in the dialog', async () => {
    mockAPI(
      route('GET', '/v1/shards', () => json({ items: [shard('shard-1')] })),
      route('POST', '/v1/shards/shard-1/drain', () => json({ error: { code: 'conflict', message: 'no other shard can take the sites' } }, 409)),
    );
    renderPage(<Shards />, { path: '/admin/shards', session: ops });
    await userEvent.click(await screen.findByRole('button', { name: 'Drain' }));
    const dlg = await screen.findByRole('dialog', { name: 'Drain shard-1' });
    await userEvent.click(within(dlg).getByRole('button', { name: 'Drain' }));
    expect(await within(dlg).findByRole('alert')).toHaveTextContent('no other shard can take the sites');
  });

  it('opens a shard drawer with its sites count; viewers get no actions', async () => {
    mockAPI(
      route('GET', '/v1/shards', () => json({ items: [shard('shard-1')] })),
      route('GET', '/v1/shards/shard-1', () => json({ ...shard('shard-1'), sites: 7, provider: 'local', labels: { zone: 'a' } })),
    );
    renderPage(<Shards />, { path: '/admin/shards', session: { ...ops, operator: false } });
    expect(await screen.findByText('shard-1')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Cordon' })).toBeNull();
    await userEvent.click(screen.getByRole('button', { name: 'shard-1' }));
    expect(await screen.findByTestId('shard-sites')).toHaveTextContent('7');
    expect(screen.getByText('zone')).toBeInTheDocument();
  });

  it('follows a drain live and stops when it ends', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      let n = 0;
      const calls = mockAPI(
        route('GET', '/v1/shards', () => {
          n++;
          const sites = Math.max(0, 3 - n);
          return json({ items: [shard('shard-1', { cordoned: true, draining: sites > 0, usage: { sites } })] });
        }),
      );
      renderPage(<Shards />, { path: '/admin/shards', session: ops });
      expect(await screen.findByText('draining')).toBeInTheDocument();
      expect(screen.getByText('2 of 10')).toBeInTheDocument();
      await vi.advanceTimersByTimeAsync(POLL_MS);
      expect(await screen.findByText('1 of 10')).toBeInTheDocument();
      await vi.advanceTimersByTimeAsync(POLL_MS);
      expect(await screen.findByText('0 of 10')).toBeInTheDocument();
      expect(screen.queryByText('draining')).toBeNull();
      // Drained: no more polling.
      const reads = calls.length;
      await vi.advanceTimersByTimeAsync(POLL_MS * 3);
      expect(calls.length).toBe(reads);
    } finally {
      vi.useRealTimers();
    }
  });

  it("shows the server's message", async () => {
    mockAPI(route('GET', '/v1/shards', () => json({ error: { code: 'forbidden', message: 'platform staff only' } }, 403)));
    renderPage(<Shards />, { path: '/admin/shards' });
    expect(await screen.findByRole('alert')).toHaveTextContent('platform staff only');
  });
});
