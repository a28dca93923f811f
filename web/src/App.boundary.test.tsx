import { render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { App } from './App';
import { json, mockAPI, route } from './test/render';

// A page that fails to render, as a bug anywhere below App would.
vi.mock('./pages/SignIn', () => ({
  default: () => {
    throw new Error('boom: cannot read the sign-in form');
  },
  safeReturn: (v: string | null) => v ?? '/sites',
}));

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
  window.history.replaceState(null, '', '/');
});

describe('App error boundary', () => {
  it('shows a readable error and a Reload button instead of a blank page', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {});
    mockAPI(route('GET', '/v1/whoami', () => json({ error: { code: 'unauthenticated', message: 'sign in' } }, 401)));
    window.history.replaceState(null, '', '/signin');
    render(<App />);
    expect(await screen.findByRole('heading', { name: 'Something went wrong' })).toBeInTheDocument();
    expect(screen.getByRole('alert')).toHaveTextContent('boom: cannot read the sign-in form');
    expect(screen.getByRole('button', { name: 'Reload' })).toBeInTheDocument();
  });
});
