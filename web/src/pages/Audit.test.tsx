import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { json, mockAPI, renderPage, route } from '../test/render';
import Audit, { matches, toRFC3339 } from './Audit';

Element.prototype.scrollIntoView ||= () => {};
afterEach(() => vi.unstubAllGlobals());

const entry = (seq: number, over: Record<string, unknown> = {}) => ({
  seq,
  time: '2026-12-05T10:00:00Z',
  actor: 'tok-1',
  actor_user: 'usr-ann',
  org: 'acme',
  channel: 'portal',
  action: 'site.create',
  target: `s${seq}.localhost`,
  outcome: 'success',
  request_id: `req-${seq}`,
  prev_hash: '',
  hash: '',
  ...over,
});

describe('Audit', () => {
  it('lists the organisation entries, loads more and filters', async () => {
    const calls = mockAPI(
      route('GET', '/v1/audit', (_r, url) =>
        url.searchParams.get('after') === '2'
          ? json({ items: [entry(3, { channel: 'assistant', action: 'backup.create', request_id: 'cnv-abc-1' })] })
          : json({ items: [entry(1), entry(2, { outcome: 'forbidden' })], next: 2 }),
      ),
    );
    renderPage(<Audit />, { path: '/audit' });
    expect(await screen.findByText('s1.localhost')).toBeInTheDocument();
    expect(calls[0].path).toBe('/v1/audit?limit=100&org=acme');
    expect(screen.getByText('forbidden')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Load more' }));
    expect(await screen.findByText('cnv-abc-1')).toBeInTheDocument();
    expect(calls[1].path).toBe('/v1/audit?limit=100&org=acme&after=2');
    expect(screen.queryByRole('button', { name: 'Load more' })).toBeNull();
    // The assistant's calls are visible and can be picked out.
    await userEvent.click(screen.getByRole('textbox', { name: 'Channel' }));
    await userEvent.click(await screen.findByRole('option', { name: 'assistant' }));
    await waitFor(() => expect(screen.getAllByTestId('audit-row')).toHaveLength(1));
    expect(within(screen.getByTestId('audit-row')).getByText('backup.create')).toBeInTheDocument();
    expect(screen.getByRole('link', { name: /Export/ })).toHaveAttribute('href', '/v1/audit/export?org=acme');
  });

  it('queries another organisation and time', async () => {
    const calls = mockAPI(route('GET', '/v1/audit', () => json({ items: [] })));
    renderPage(<Audit />, { path: '/audit', session: { platform: true, org: '' } });
    expect(await screen.findByText('No audit entries.')).toBeInTheDocument();
    expect(calls[0].path).toBe('/v1/audit?limit=100');
    await userEvent.type(screen.getByLabelText('Organisation'), 'globex');
    await userEvent.click(screen.getByRole('button', { name: 'Apply' }));
    await waitFor(() => expect(calls).toHaveLength(2));
    expect(calls[1].path).toBe('/v1/audit?limit=100&org=globex');
    expect(screen.getByRole('link', { name: /Export/ })).toHaveAttribute('href', '/v1/audit/export?org=globex');
  });

  it("shows the server's message", async () => {
    mockAPI(route('GET', '/v1/audit', () => json({ error: { code: 'forbidden', message: 'you may not read the audit of acme' } }, 403)));
    renderPage(<Audit />, { path: '/audit', session: { orgs: { acme: 'viewer' } } });
    expect(await screen.findByRole('alert')).toHaveTextContent('you may not read the audit of acme');
  });

  it('matches filters case-insensitively', () => {
    const e = entry(1) as Parameters<typeof matches>[0];
    const none = { actor: '', action: '', target: '', channel: '', request: '' };
    expect(matches(e, none)).toBe(true);
    expect(matches(e, { ...none, action: 'SITE.' })).toBe(true);
    expect(matches(e, { ...none, actor: 'usr-ann' })).toBe(true);
    expect(matches(e, { ...none, actor: 'bob' })).toBe(false);
    expect(matches(e, { ...none, channel: 'cli' })).toBe(false);
    expect(matches({ ...e, channel: '' }, { ...none, channel: 'api' })).toBe(true);
    expect(toRFC3339('')).toBe('');
    expect(toRFC3339('2026-12-05T10:00')).toMatch(/^2026-12-0[45]T\d\d:00:00.000Z$/);
  });
});
