import { screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { renderPage } from '../test/render';
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
