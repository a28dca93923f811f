import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { json, mockAPI, renderPage, route } from '../test/render';
import Members from './Members';

// jsdom lacks scrollIntoView, which Mantine's Select calls.
Element.prototype.scrollIntoView ||= () => {};
afterEach(() => vi.unstubAllGlobals());

const members = {
  items: [
    { org: 'acme', user_id: 'usr-ann', role: 'owner', created_at: '2026-01-01T00:00:00Z', email: 'ann@acme.example', name: 'Ann' },
    { org: 'acme', user_id: 'usr-bob', role: 'developer', created_at: '2026-01-02T00:00:00Z', email: 'bob@acme.example', name: 'Bob' },
  ],
};
const invites = {
  items: [{ id: 'inv-1', org: 'acme', email: 'cy@acme.example', role: 'viewer', created_at: '2026-01-03T00:00:00Z', expires_at: '2026-01-10T00:00:00Z', state: 'pending' }],
};

describe('Members', () => {
  it('invites an address with a role', async () => {
    const calls = mockAPI(
      route('GET', '/v1/orgs/acme/members', () => json(members)),
      route('GET', '/v1/orgs/acme/invites', () => json(invites)),
      route('POST', '/v1/orgs/acme/invites', () =>
        json({ id: 'inv-2', org: 'acme', email: 'dee@acme.example', role: 'billing', created_at: '', expires_at: '', state: 'pending', sent_to: 'dee@acme.example' }, 201),
      ),
    );
    renderPage(<Members />, { path: '/members' });
    expect(await screen.findByText('bob@acme.example')).toBeInTheDocument();
    expect(await screen.findByText('cy@acme.example')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Invite' }));
    await userEvent.type(await screen.findByLabelText(/E-mail/), 'dee@acme.example');
    // The browser test finds the fields by their labels: they must be unique on the page.
    expect(screen.getAllByRole('textbox', { name: /role/i })).toHaveLength(1);
    expect(screen.getAllByRole('textbox', { name: /e-mail/i })).toHaveLength(1);
    await userEvent.click(screen.getByRole('textbox', { name: 'Role' }));
    await userEvent.click(await screen.findByRole('option', { name: 'billing' }));
    await userEvent.click(screen.getByRole('button', { name: 'Send invitation' }));
    expect(await screen.findByRole('status')).toHaveTextContent('Invitation sent to dee@acme.example');
    const post = calls.find((c) => c.method === 'POST');
    expect(JSON.parse(post!.body)).toEqual({ email: 'dee@acme.example', role: 'billing' });
    // The invitations are read again after sending.
    expect(calls.filter((c) => c.path === '/v1/orgs/acme/invites' && c.method === 'GET')).toHaveLength(2);
  });

  it('changes a role and shows a refusal', async () => {
    const calls = mockAPI(
      route('GET', '/v1/orgs/acme/members', () => json(members)),
      route('GET', '/v1/orgs/acme/invites', () => json({ items: [] })),
      route('PUT', '/v1/orgs/acme/members/usr-ann', () => json({ error: { code: 'conflict', message: 'acme must keep an owner' } }, 409)),
    );
    renderPage(<Members />, { path: '/members' });
    await userEvent.click(await screen.findByRole('textbox', { name: 'Access level of ann@acme.example' }));
    await userEvent.click(await screen.findByRole('option', { name: 'viewer' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('acme must keep an owner');
    expect(JSON.parse(calls.find((c) => c.method === 'PUT')!.body)).toEqual({ role: 'viewer' });
  });

  it('removes a member after confirmation and revokes an invitation', async () => {
    const calls = mockAPI(
      route('GET', '/v1/orgs/acme/members', () => json(members)),
      route('GET', '/v1/orgs/acme/invites', () => json(invites)),
      route('DELETE', '/v1/orgs/acme/members/usr-bob', () => new Response(null, { status: 204 })),
      route('DELETE', '/v1/orgs/acme/invites/inv-1', () => new Response(null, { status: 204 })),
    );
    renderPage(<Members />, { path: '/members' });
    const bob = (await screen.findByText('bob@acme.example')).closest('tr')!;
    await userEvent.click(within(bob).getByRole('button', { name: 'Remove' }));
    const dlg = await screen.findByRole('dialog');
    await userEvent.click(within(dlg).getByRole('button', { name: 'Remove' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'DELETE' && c.path === '/v1/orgs/acme/members/usr-bob')).toBe(true));
    const inv = (await screen.findByText('cy@acme.example')).closest('tr')!;
    await userEvent.click(within(inv).getByRole('button', { name: 'Revoke' }));
    await userEvent.click(within(await screen.findByRole('dialog', { name: 'Revoke invitation' })).getByRole('button', { name: 'Revoke' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'DELETE' && c.path === '/v1/orgs/acme/invites/inv-1')).toBe(true));
  });

  it('shows viewers the members read-only, without invitations', async () => {
    const calls = mockAPI(route('GET', '/v1/orgs/acme/members', () => json(members)));
    renderPage(<Members />, { path: '/members', session: { orgs: { acme: 'viewer' } } });
    expect(await screen.findByText('bob@acme.example')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Invite' })).toBeNull();
    expect(screen.queryByRole('button', { name: 'Remove' })).toBeNull();
    expect(calls.map((c) => c.path)).toEqual(['/v1/orgs/acme/members']);
  });

  it('lists the platform users for staff', async () => {
    mockAPI(
      route('GET', '/v1/orgs/acme/members', () => json(members)),
      route('GET', '/v1/users', () => json({ items: [{ id: 'usr-zed', email: 'zed@ops.example', platform_role: 'operator', created_at: '2026-01-01T00:00:00Z', disabled: true }] })),
    );
    renderPage(<Members />, { path: '/members', session: { platform: true, orgs: { acme: 'viewer' } } });
    const users = await screen.findByRole('table', { name: 'Users' });
    expect(await within(users).findByText('zed@ops.example')).toBeInTheDocument();
    expect(within(users).getByText('disabled')).toBeInTheDocument();
    // Only admins manage users.
    expect(within(users).queryByRole('button', { name: 'Enable' })).toBeNull();
  });

  it('lets admins disable a user, not themselves', async () => {
    let disabled = false;
    const calls = mockAPI(
      route('GET', '/v1/orgs/acme/members', () => json(members)),
      route('GET', '/v1/orgs/acme/invites', () => json({ items: [] })),
      route('GET', '/v1/users', () =>
        json({
          items: [
            { id: 'usr-ann', email: 'ann@acme.example', platform_role: 'admin', created_at: '2026-01-01T00:00:00Z' },
            { id: 'usr-bob', email: 'bob@acme.example', created_at: '2026-01-01T00:00:00Z', disabled },
          ],
        }),
      ),
      route('PATCH', '/v1/users/usr-bob', () => {
        disabled = true;
        return json({ id: 'usr-bob', email: 'bob@acme.example', created_at: '', disabled: true, memberships: [] });
      }),
    );
    renderPage(<Members />, {
      path: '/members',
      session: { platform: true, operator: true, me: { id: 'tok-1', name: 'ann', role: 'user', platform_role: 'admin', user: { id: 'usr-ann', email: 'ann@acme.example', created_at: '' } } },
    });
    const users = await screen.findByRole('table', { name: 'Users' });
    const rows = await within(users).findAllByRole('row');
    expect(within(rows[1]).queryByRole('button', { name: 'Disable' })).toBeNull();
    await userEvent.click(within(rows[2]).getByRole('button', { name: 'Disable' }));
    await userEvent.click(within(await screen.findByRole('dialog', { name: 'Disable bob@acme.example' })).getByRole('button', { name: 'Disable' }));
    await waitFor(() => expect(within(screen.getByRole('table', { name: 'Users' })).getByText('disabled')).toBeInTheDocument());
    expect(JSON.parse(calls.find((c) => c.method === 'PATCH')!.body)).toEqual({ disabled: true });
  });
});
