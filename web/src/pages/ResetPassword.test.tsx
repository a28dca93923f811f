import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { json, mockAPI, renderPage, route } from '../test/render';
import ResetPassword from './ResetPassword';

const secret = 'aipr_' + 'f'.repeat(40);

beforeEach(() => sessionStorage.clear());
afterEach(() => vi.unstubAllGlobals());

describe('ResetPassword', () => {
  it('requests a link by e-mail', async () => {
    window.history.replaceState(null, '', '/reset-password');
    const calls = mockAPI(route('POST', '/v1/auth/password-reset', () => json({}, 202)));
    renderPage(<ResetPassword />, { path: '/reset-password', session: { me: null } });
    await userEvent.type(screen.getByLabelText(/E-mail/), 'ann@acme.example');
    await userEvent.click(screen.getByRole('button', { name: 'Send reset link' }));
    expect(await screen.findByRole('status')).toHaveTextContent('If ann@acme.example has an account');
    expect(JSON.parse(calls[0].body)).toEqual({ email: 'ann@acme.example' });
  });

  it('sets a new password with the secret of the fragment', async () => {
    window.history.replaceState(null, '', '/reset-password#' + secret);
    const calls = mockAPI(route('POST', '/v1/auth/password-reset/confirm', () => json({ user: { id: 'usr-ann', email: 'ann@acme.example' } })));
    renderPage(<ResetPassword />, { path: '/reset-password', session: { me: null } });
    expect(window.location.hash).toBe('');
    await userEvent.type(screen.getByLabelText(/^New password/), 'correct horse battery');
    await userEvent.type(screen.getByLabelText(/Repeat new password/), 'correct horse battery');
    await userEvent.click(screen.getByRole('button', { name: 'Set new password' }));
    expect(await screen.findByRole('status')).toHaveTextContent('Password changed');
    expect(JSON.parse(calls[0].body)).toEqual({ token: secret, new_password: 'correct horse battery' });
    expect(sessionStorage.getItem('aipress.reset')).toBeNull();
  });

  it('takes ?token= out of the address bar and shows a refusal', async () => {
    window.history.replaceState(null, '', '/reset-password?token=' + secret);
    const calls = mockAPI(
      route('POST', '/v1/auth/password-reset/confirm', () => json({ error: { code: 'invalid_argument', message: 'the reset link is unknown or expired' } }, 400)),
    );
    renderPage(<ResetPassword />, { path: '/reset-password', session: { me: null } });
    expect(window.location.search).toBe('');
    expect(window.location.hash).toBe('');
    await userEvent.type(screen.getByLabelText(/^New password/), 'correct horse battery');
    await userEvent.type(screen.getByLabelText(/Repeat new password/), 'correct horse battery');
    await userEvent.click(screen.getByRole('button', { name: 'Set new password' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('the reset link is unknown or expired');
    expect(JSON.parse(calls[0].body).token).toBe(secret);
  });

  it('refuses two different passwords before calling the API', async () => {
    window.history.replaceState(null, '', '/reset-password#' + secret);
    const calls = mockAPI();
    renderPage(<ResetPassword />, { path: '/reset-password', session: { me: null } });
    await userEvent.type(screen.getByLabelText(/^New password/), 'correct horse battery');
    await userEvent.type(screen.getByLabelText(/Repeat new password/), 'correct horse batterx');
    await userEvent.click(screen.getByRole('button', { name: 'Set new password' }));
    await waitFor(() => expect(screen.getByRole('alert')).toHaveTextContent('The two passwords differ.'));
    expect(calls).toHaveLength(0);
  });
});
