import { MantineProvider } from '@mantine/core';
import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import ChatPanel from './components/ChatPanel';
import { SessionProvider, useSession } from './session';
import { json, mockAPI, route } from './test/render';

function SignOutButton() {
  const s = useSession();
  return (
    <button type="button" onClick={() => void s.signOut()}>
      {s.me ? 'Sign out' : 'signed out'}
    </button>
  );
}

const conversation = {
  conversation: 'cnv-1',
  seq: 2,
  items: [
    { kind: 'user', key: 0, text: 'show the secret site' },
    { kind: 'tool', key: 1, id: 't1', tool: 'get_site', args: { name: 'private.example' }, done: true, result: { admin: 'ann' } },
  ],
};

beforeEach(() => {
  sessionStorage.clear();
  localStorage.clear();
});
afterEach(() => vi.unstubAllGlobals());

describe('SessionProvider signOut', () => {
  it("forgets the user's conversation, secrets and organisation, and empties the open chat panel", async () => {
    sessionStorage.setItem('aipress.assistant', JSON.stringify(conversation));
    sessionStorage.setItem('aipress.invite', 'inv_secret');
    sessionStorage.setItem('aipress.reset', 'aipr_secret');
    localStorage.setItem('aipress.org', 'acme');
    const calls = mockAPI(
      route('GET', '/v1/whoami', () => json({ id: 'tok', name: 'ann', role: 'user', orgs: { acme: 'owner' } })),
      route('GET', '/v1/orgs/acme', () => json({ name: 'acme', branding: {} })),
      route('GET', '/v1/assistant', () => json({ provider: 'offline' })),
      route('POST', '/v1/auth/logout', () => new Response(null, { status: 204 })),
    );
    render(
      <MantineProvider>
        <SessionProvider>
          <SignOutButton />
          <ChatPanel onClose={() => {}} />
        </SessionProvider>
      </MantineProvider>,
    );
    expect(await screen.findByTestId('user-message')).toHaveTextContent('show the secret site');
    await userEvent.click(await screen.findByRole('button', { name: 'Sign out' }));
    await screen.findByRole('button', { name: 'signed out' });
    expect(calls.some((c) => c.method === 'POST' && c.path === '/v1/auth/logout')).toBe(true);
    // The panel starts empty: the suggestions, no trace of the old log.
    expect(screen.getByTestId('chat-suggestions')).toBeInTheDocument();
    expect(screen.queryByTestId('user-message')).toBeNull();
    await waitFor(() => expect(sessionStorage.getItem('aipress.assistant')).toBeNull());
    expect(sessionStorage.getItem('aipress.invite')).toBeNull();
    expect(sessionStorage.getItem('aipress.reset')).toBeNull();
    expect(localStorage.getItem('aipress.org')).toBeNull();
  });
});
