import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { json, mockAPI, renderPage, route } from '../test/render';
import { Layout } from './Layout';

afterEach(() => vi.unstubAllGlobals());

const logo = (c: HTMLElement) => c.querySelector('header img');

describe('Layout', () => {
  it('shows an https logo from the branding', () => {
    const { container } = renderPage(<Layout>page</Layout>, { path: '/sites', session: { branding: { logo_url: 'https://cdn.example/logo.svg' } } });
    expect(logo(container)).toHaveAttribute('src', 'https://cdn.example/logo.svg');
  });

  it.each(['http://cdn.example/logo.svg', 'javascript:alert(1)', 'data:image/svg+xml,<svg onload=alert(1)>'])('ignores the logo %s', (u) => {
    const { container } = renderPage(<Layout>page</Layout>, { path: '/sites', session: { branding: { logo_url: u } } });
    expect(logo(container)).toBeNull();
    expect(screen.getByTestId('product-name')).toHaveTextContent('AIPress');
  });
});

describe('Layout accessibility', () => {
  it('returns focus to the Assistant button when the chat panel closes', async () => {
    mockAPI(route('GET', '/v1/assistant', () => json({ provider: 'offline' })));
    renderPage(<Layout>page</Layout>, { path: '/sites' });
    const assistant = screen.getByRole('button', { name: 'Assistant' });
    await userEvent.click(assistant);
    await userEvent.click(await screen.findByRole('button', { name: 'Close' }));
    await waitFor(() => expect(assistant).toHaveFocus());
    expect(screen.queryByTestId('chat-panel')).toBeNull();
  });

  it.each([
    ['/sites', {}, 'Sites — AIPress'],
    ['/jobs', { product_name: 'Acme Hosting' }, 'Jobs — Acme Hosting'],
    ['/sites/blog.example/backups', {}, 'blog.example — Sites — AIPress'],
    ['/admin/orgs', {}, 'Organisations — AIPress'],
  ])('titles %s', (path, branding, want) => {
    renderPage(<Layout>page</Layout>, { path, session: { branding } });
    expect(document.title).toBe(want);
  });

  it('offers "Skip to content" as the first focusable element, moving focus to the main content', async () => {
    renderPage(<Layout>page</Layout>, { path: '/sites' });
    await userEvent.tab();
    const skip = screen.getByRole('link', { name: 'Skip to content' });
    expect(skip).toHaveFocus();
    await userEvent.click(skip);
    expect(screen.getByRole('main')).toHaveFocus();
  });

  it("names the account menu button with the user's e-mail", () => {
    renderPage(<Layout>page</Layout>, { path: '/sites' });
    expect(screen.getByRole('button', { name: 'Account menu for ann@acme.example' })).toBeInTheDocument();
  });
});
