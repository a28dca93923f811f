import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { json, mockAPI, renderPage, route } from '../test/render';
import SignIn, { safeReturn, signInError } from './SignIn';

afterEach(() => vi.unstubAllGlobals());

describe('SignIn', () => {
  it('posts the e-mail and password and goes to return_to', async () => {
    const calls = mockAPI(route('POST', '/v1/auth/login', () => json({ user: { id: 'u' } })));
    const { location } = renderPage(<SignIn />, { path: '/signin?return_to=/sites/blog.localhost', session: { me: null } });
    await userEvent.type(screen.getByLabelText(/E-mail/), 'ann@acme.example');
    await userEvent.type(screen.getByLabelText(/Password/), 'correct horse');
    await userEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    await waitFor(() => expect(location.history).toContain('/sites/blog.localhost'));
    expect(JSON.parse(calls[0].body)).toEqual({ email: 'ann@acme.example', password: 'correct horse' });
  });

  it("shows the server's message on a refusal", async () => {
    mockAPI(route('POST', '/v1/auth/login', () => json({ error: { code: 'unauthenticated', message: 'wrong e-mail or password' } }, 401)));
    renderPage(<SignIn />, { path: '/signin', session: { me: null } });
    await userEvent.type(screen.getByLabelText(/E-mail/), 'ann@acme.example');
    await userEvent.type(screen.getByLabelText(/Password/), 'nope');
    await userEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('wrong e-mail or password');
  });

  it('titles the tab with the product', () => {
    renderPage(<SignIn />, { path: '/signin', session: { me: null, branding: { product_name: 'Acme Hosting' } } });
    expect(document.title).toBe('Sign in — Acme Hosting');
  });

  it('shows a fixed message for a known ?error= code', () => {
    renderPage(<SignIn />, { path: '/signin?error=access_denied', session: { me: null } });
    expect(screen.getByRole('alert')).toHaveTextContent('The identity provider did not sign you in.');
  });

  it('never shows the ?error= text itself', () => {
    const lure = 'Your account is locked. Call +1 555 0100 to unlock it';
    renderPage(<SignIn />, { path: `/signin?error=${encodeURIComponent(lure)}`, session: { me: null } });
    const alert = screen.getByRole('alert');
    expect(alert).toHaveTextContent('Sign-in did not complete. Try again.');
    expect(alert).not.toHaveTextContent('555');
  });

  it.each([
    ['unauthenticated', 'The identity provider did not sign you in.'],
    ['forbidden', 'This account may not sign in. Ask an organisation owner for an invitation.'],
    ['toString', 'Sign-in did not complete. Try again.'],
    ['__proto__', 'Sign-in did not complete. Try again.'],
    ['', ''],
    [null, ''],
  ])('signInError(%s) = %s', (code, want) => {
    expect(signInError(code)).toBe(want);
  });

  it.each([
    ['/sites/x', '/sites/x'],
    ['//evil.example/', '/sites'],
    ['https://evil.example/', '/sites'],
    ['/\\evil.example', '/sites'],
    ['/\t/evil.example', '/sites'],
    ['/\n/evil.example', '/sites'],
    ['/\r/evil.example', '/sites'],
    ['/sites\\..\\\\evil.example', '/sites'],
    ['/\u0000/evil.example', '/sites'],
    ['/\u007f/evil.example', '/sites'],
    [' /sites', '/sites'],
    ['javascript:alert(1)', '/sites'],
    ['/%5Cevil.example', '/%5Cevil.example'],
    ['/%2F%2Fevil.example', '/%2F%2Fevil.example'],
    ['/a/..//evil.example', '/sites'],
    ['/sites/x?tab=backups#top', '/sites/x?tab=backups#top'],
    ['', '/sites'],
    [null, '/sites'],
  ])('safeReturn(%s) = %s', (v, want) => {
    expect(safeReturn(v)).toBe(want);
  });
});
