import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { json, mockAPI, renderPage, route } from '../test/render';
import AcceptInvite from './AcceptInvite';

const secret = 'inv_' + '0'.repeat(48);

beforeEach(() => {
  sessionStorage.clear();
  window.history.replaceState(null, '', '/invite#' + secret);
});
afterEach(() => vi.unstubAllGlobals());

describe('AcceptInvite', () => {
  it('makes an account with the secret from the fragment and goes to /sites', async () => {
    const refresh = vi.fn(async () => {});
    const setOrg = vi.fn();
    const calls = mockAPI(route('POST', '/v1/invites/accept', () => json({ org: 'acme', role: 'developer', signed_in: true })));
    const { location } = renderPage(<AcceptInvite />, { path: '/invite', session: { me: null, refresh, setOrg } });
    // The secret leaves the address bar at once.
    expect(window.location.hash).toBe('');
    await userEvent.type(screen.getByLabelText('Name'), 'Dee');
    await userEvent.type(screen.getByLabelText(/Password/), 'correct horse battery');
    await userEvent.click(screen.getByRole('button', { name: 'Create account and join' }));
    await waitFor(() => expect(location.history).toContain('/sites'));
    expect(JSON.parse(calls[0].body)).toEqual({ token: secret, password: 'correct horse battery', name: 'Dee' });
    expect(refresh).toHaveBeenCalled();
    expect(setOrg).toHaveBeenCalledWith('acme');
    expect(sessionStorage.getItem('aipress.invite')).toBeNull();
  });

  it('tells an existing account to sign in first, keeping the secret out of URLs', async () => {
    mockAPI(
      route('POST', '/v1/invites/accept', () =>
        json({ error: { code: 'unauthenticated', message: 'dee@acme.example already has an account: sign in as that user, then accept the invitation' } }, 401),
      ),
    );
    const { location } = renderPage(<AcceptInvite />, { path: '/invite', session: { me: null } });
    await userEvent.type(screen.getByLabelText(/Password/), 'correct horse battery');
    await userEvent.click(screen.getByRole('button', { name: 'Create account and join' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('already has an account');
    await userEvent.click(screen.getByRole('button', { name: 'Sign in to accept' }));
    await waitFor(() => expect(location.history).toContain('/signin?return_to=/invite'));
    expect(location.history.join(' ')).not.toContain(secret);
    expect(sessionStorage.getItem('aipress.invite')).toBe(secret);
  });

  it('accepts while signed in, with the kept secret after the sign-in detour', async () => {
    window.history.replaceState(null, '', '/invite');
    sessionStorage.setItem('aipress.invite', secret);
    const calls = mockAPI(route('POST', '/v1/invites/accept', () => json({ org: 'acme', role: 'viewer' })));
    const { location } = renderPage(<AcceptInvite />, { path: '/invite' });
    expect(screen.getByText('ann@acme.example')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Accept invitation' }));
    await waitFor(() => expect(location.history).toContain('/sites'));
    expect(JSON.parse(calls[0].body)).toEqual({ token: secret });
  });

  it('asks a signed-in user for a password when the invited address has no account', async () => {
    mockAPI(
      route('POST', '/v1/invites/accept', () =>
        json({ error: { code: 'invalid_argument', message: 'new@acme.example has no account yet: send a password (or sign in with oidc)' } }, 400),
      ),
    );
    renderPage(<AcceptInvite />, { path: '/invite' });
    await userEvent.click(screen.getByRole('button', { name: 'Accept invitation' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('has no account yet');
    expect(screen.getByRole('button', { name: 'Create account and join' })).toBeInTheDocument();
  });

  it('says so when the link has no secret', () => {
    window.history.replaceState(null, '', '/invite');
    mockAPI();
    renderPage(<AcceptInvite />, { path: '/invite', session: { me: null } });
    expect(screen.getByRole('alert')).toHaveTextContent('no invitation in it');
  });
});
