import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { json, mockAPI, renderPage, route } from '../test/render';
import Tokens from './Tokens';

// jsdom lacks scrollIntoView, which Mantine's Select calls.
Element.prototype.scrollIntoView ||= () => {};
afterEach(() => vi.unstubAllGlobals());

const list = {
  items: [
    { id: 'org-0123456789ab', name: 'deploy', role: 'developer', org: 'acme', kind: 'api', prefix: 'aip_01234567', created_at: '2026-01-01T00:00:00Z' },
    { id: 'ses-1', name: 'browser', role: 'user', kind: 'session', prefix: 'aip_89abcdef', created_at: '2026-01-01T00:00:00Z' },
  ],
};
const secret = 'aip_' + 'a'.repeat(48);

describe('Tokens', () => {
  it('creates an organisation token and shows its secret once', async () => {
    const calls = mockAPI(
      route('GET', '/v1/tokens', () => json(list)),
      route('POST', '/v1/tokens', () => json({ id: 'org-new', name: 'ci', role: 'viewer', org: 'acme', created_at: '', token: secret }, 201)),
    );
    renderPage(<Tokens />, { path: '/tokens' });
    expect(await screen.findByText('deploy')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Create token' }));
    const dlg = await screen.findByRole('dialog', { name: 'Create token' });
    await userEvent.type(within(dlg).getByLabelText(/Name/), 'ci');
    await userEvent.click(within(dlg).getByRole('textbox', { name: 'Role' }));
    await userEvent.click(await screen.findByRole('option', { name: 'viewer' }));
    await userEvent.click(within(dlg).getByRole('textbox', { name: 'Expires' }));
    await userEvent.click(await screen.findByRole('option', { name: '30 days' }));
    await userEvent.click(within(dlg).getByRole('button', { name: 'Create token' }));
    expect(await screen.findByTestId('token-secret')).toHaveTextContent(secret);
    const post = calls.find((c) => c.method === 'POST')!;
    expect(JSON.parse(post.body)).toEqual({ name: 'ci', role: 'viewer', org: 'acme', expires_in_seconds: 30 * 86400 });
    await userEvent.click(screen.getByRole('button', { name: 'Done' }));
    await waitFor(() => expect(screen.queryByTestId('token-secret')).toBeNull());
  });

  it('rotates with an overlap and revokes after confirmation', async () => {
    const calls = mockAPI(
      route('GET', '/v1/tokens', () => json(list)),
      route('POST', '/v1/tokens/org-0123456789ab/rotate', () => json({ id: 'org-new', name: 'deploy', role: 'developer', created_at: '', token: secret }, 201)),
      route('DELETE', '/v1/tokens/ses-1', () => new Response(null, { status: 204 })),
    );
    renderPage(<Tokens />, { path: '/tokens' });
    const row = (await screen.findByText('deploy')).closest('tr')!;
    await userEvent.click(within(row).getByRole('button', { name: 'Rotate' }));
    const dlg = await screen.findByRole('dialog', { name: 'Rotate deploy' });
    await userEvent.click(within(dlg).getByRole('button', { name: 'Rotate' }));
    expect(await screen.findByTestId('token-secret')).toHaveTextContent(secret);
    expect(JSON.parse(calls.find((c) => c.path.endsWith('/rotate'))!.body)).toEqual({ overlap_seconds: 86400 });
    await userEvent.click(screen.getByRole('button', { name: 'Done' }));
    // Sessions cannot be rotated, only revoked.
    const ses = screen.getByText('browser').closest('tr')!;
    expect(within(ses).queryByRole('button', { name: 'Rotate' })).toBeNull();
    await userEvent.click(within(ses).getByRole('button', { name: 'Revoke' }));
    await userEvent.click(within(await screen.findByRole('dialog', { name: 'Revoke browser' })).getByRole('button', { name: 'Revoke' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'DELETE' && c.path === '/v1/tokens/ses-1')).toBe(true));
  });

  it("shows the server's refusal in the create dialog", async () => {
    mockAPI(
      route('GET', '/v1/tokens', () => json({ items: [] })),
      route('POST', '/v1/tokens', () => json({ error: { code: 'forbidden', message: 'role owner exceeds yours in acme' } }, 403)),
    );
    renderPage(<Tokens />, { path: '/tokens' });
    expect(await screen.findByText('No tokens yet.')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Create token' }));
    const dlg = await screen.findByRole('dialog', { name: 'Create token' });
    await userEvent.type(within(dlg).getByLabelText(/Name/), 'x');
    await userEvent.click(within(dlg).getByRole('button', { name: 'Create token' }));
    expect(await within(dlg).findByRole('alert')).toHaveTextContent('role owner exceeds yours in acme');
  });
});
