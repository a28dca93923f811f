import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { json, mockAPI, renderPage, route } from '../test/render';
import Orgs from './Orgs';

Element.prototype.scrollIntoView ||= () => {};
afterEach(() => vi.unstubAllGlobals());

const org = (name: string, over: Record<string, unknown> = {}) => ({ name, kind: 'customer', plan: 'basic', created_at: '2026-01-01T00:00:00Z', ...over });
const admin = {
  platform: true,
  operator: true,
  org: '',
  orgs: {},
  me: { id: 'tok-a', name: 'root', role: 'user', platform_role: 'admin', user: { id: 'usr-root', email: 'root@ops.example', created_at: '' } },
};
const quota = (used: number) => json({ ...org('x'), quotas: { sites: { used, limit: 3 } } });

describe('Orgs', () => {
  it('lists organisations with sites used, searches and pages', async () => {
    const calls = mockAPI(
      route('GET', '/v1/orgs', (_r, url) =>
        url.searchParams.get('continue') === 'p2'
          ? json({ items: [org('zeta')] })
          : json({ items: [org('acme', { partner: 'resell' }), org('resell', { kind: 'partner', plan: '' }), org('globex', { suspended: true })], continue: 'p2' }),
      ),
      route('GET', /^\/v1\/orgs\/[a-z]+$/, (_r, url) => quota(url.pathname.endsWith('acme') ? 2 : 0)),
    );
    renderPage(<Orgs />, { path: '/admin/orgs', session: admin });
    expect(await screen.findAllByTestId('org-row')).toHaveLength(3);
    expect(await screen.findByTestId('sites-acme')).toHaveTextContent('2 / 3');
    expect(screen.getByText('suspended')).toBeInTheDocument();
    expect(calls[0].path).toBe('/v1/orgs?limit=50');
    await userEvent.type(screen.getByLabelText('Search organisations'), 'resell');
    await waitFor(() => expect(screen.getAllByTestId('org-row')).toHaveLength(2));
    await userEvent.clear(screen.getByLabelText('Search organisations'));
    await userEvent.click(screen.getByRole('button', { name: 'Next page' }));
    await waitFor(() => expect(screen.getAllByTestId('org-row')).toHaveLength(1));
    expect(screen.getByText('zeta')).toBeInTheDocument();
    expect(calls.some((c) => c.path === '/v1/orgs?limit=50&continue=p2')).toBe(true);
  });

  it('creates an organisation (admins) and shows a refusal', async () => {
    let n = 0;
    const calls = mockAPI(
      route('GET', '/v1/orgs', () => json({ items: [] })),
      route('POST', '/v1/orgs', () =>
        n++ === 0 ? json({ error: { code: 'conflict', message: 'organisation initech exists' } }, 409) : json(org('initech'), 201),
      ),
    );
    renderPage(<Orgs />, { path: '/admin/orgs', session: admin });
    expect(await screen.findByText('No organisations.')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Create organisation' }));
    const dlg = await screen.findByRole('dialog', { name: 'Create organisation' });
    await userEvent.type(within(dlg).getByRole('textbox', { name: /^Name/ }), 'initech');
    await userEvent.type(within(dlg).getByLabelText('Partner'), 'resell');
    await userEvent.click(within(dlg).getByRole('button', { name: 'Create organisation' }));
    expect(await within(dlg).findByRole('alert')).toHaveTextContent('organisation initech exists');
    await userEvent.click(within(dlg).getByRole('button', { name: 'Create organisation' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(JSON.parse(calls.filter((c) => c.method === 'POST')[1].body)).toEqual({ name: 'initech', kind: 'customer', partner: 'resell', plan: 'basic' });
  });

  it('offers no creation to non-admin staff', async () => {
    mockAPI(route('GET', '/v1/orgs', () => json({ items: [] })));
    renderPage(<Orgs />, { path: '/admin/orgs', session: { ...admin, me: { ...admin.me, platform_role: 'support' } } });
    expect(await screen.findByText('No organisations.')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Create organisation' })).toBeNull();
  });
});
