import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { json, mockAPI, renderPage, route } from '../test/render';
import Device from './Device';

afterEach(() => vi.unstubAllGlobals());

describe('Device', () => {
  it.each([['/device?code=BCDF-GHJK'], ['/device?user_code=bcdf-ghjk']])('approves the code of %s', async (path) => {
    const calls = mockAPI(route('POST', '/v1/auth/device/approve', () => json({ approved: true })));
    renderPage(<Device />, { path });
    expect(screen.getByLabelText(/Code/)).toHaveValue('BCDF-GHJK');
    await userEvent.click(screen.getByRole('button', { name: 'Approve sign-in' }));
    expect(await screen.findByRole('status')).toHaveTextContent('Sign-in BCDF-GHJK approved');
    expect(JSON.parse(calls[0].body)).toEqual({ user_code: 'BCDF-GHJK' });
  });

  it("shows the server's message for an unknown code", async () => {
    mockAPI(route('POST', '/v1/auth/device/approve', () => json({ error: { code: 'not_found', message: 'no pending sign-in with code "XXXX-XXXX" (expired, used or mistyped)' } }, 404)));
    renderPage(<Device />, { path: '/device' });
    await userEvent.type(screen.getByLabelText(/Code/), 'xxxx-xxxx');
    await userEvent.click(screen.getByRole('button', { name: 'Approve sign-in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('no pending sign-in with code');
  });
});
