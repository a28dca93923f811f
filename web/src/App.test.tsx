import { render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { App } from './App';
import { json, mockAPI, route } from './test/render';

afterEach(() => {
  vi.unstubAllGlobals();
  sessionStorage.clear();
  window.history.replaceState(null, '', '/');
});

describe('App', () => {
  it('shows the invitation page for a malformed fragment instead of a blank page', async () => {
    mockAPI(route('GET', '/v1/whoami', () => json({ error: { code: 'unauthenticated', message: 'sign in' } }, 401)));
    window.history.replaceState(null, '', '/invite#%E0%A4%A');
    render(<App />);
    expect(await screen.findByRole('button', { name: 'Create account and join' })).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Reload' })).toBeNull();
    expect(window.location.hash).toBe('');
  });
});
