import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { json, mockAPI, renderPage, route } from '../test/render';
import Plan from './Plan';

Element.prototype.scrollIntoView ||= () => {};
afterEach(() => vi.unstubAllGlobals());

const view = {
  name: 'acme',
  kind: 'customer',
  plan: 'basic',
  created_at: '2026-01-01T00:00:00Z',
  branding: { product_name: 'AcmePress' },
  quotas: {
    plan: 'basic',
    sites: { used: 2, limit: 3 },
    bandwidth: { month: '2026-12', used_gb: 12.5, limit_gb: 100 },
    per_site: [{ site: 'a.example', plan: 'basic', disk_mb: { used: 120, limit: 1024 }, bandwidth: { month: '2026-12', used_gb: 12.5, limit_gb: 100 } }],
  },
};

describe('Plan', () => {
  it('shows quotas as progress bars', async () => {
    mockAPI(route('GET', '/v1/orgs/acme', () => json(view)));
    renderPage(<Plan />, { path: '/plan', session: { orgs: { acme: 'viewer' } } });
    const sites = await screen.findByRole('progressbar', { name: 'Sites' });
    expect(sites).toHaveAttribute('aria-valuenow', '67');
    expect(screen.getByText('2 of 3')).toBeInTheDocument();
    expect(screen.getByRole('progressbar', { name: 'Bandwidth 2026-12' })).toHaveAttribute('aria-valuenow', '13');
    expect(screen.getByRole('progressbar', { name: 'Disk of a.example' })).toHaveAttribute('aria-valuenow', '12');
    // Viewers change nothing.
    expect(screen.queryByRole('button', { name: 'Change plan' })).toBeNull();
    expect(screen.queryByRole('button', { name: 'Save branding' })).toBeNull();
  });

  it('changes the plan and shows a quota refusal', async () => {
    let refuse = true;
    const calls = mockAPI(
      route('GET', '/v1/orgs/acme', () => json(view)),
      route('PATCH', '/v1/orgs/acme', () =>
        refuse
          ? json({ error: { code: 'quota_exceeded', message: "organisation acme's plan dev allows 3 sites; it has 4" } }, 403)
          : json({ ...view, plan: 'pro' }),
      ),
    );
    renderPage(<Plan />, { path: '/plan', session: { orgs: { acme: 'billing' } } });
    const box = await screen.findByRole('region', { name: 'Change plan' });
    const input = within(box).getByRole('textbox', { name: 'Plan' });
    await userEvent.clear(input);
    await userEvent.type(input, 'dev');
    await userEvent.click(within(box).getByRole('button', { name: 'Change plan' }));
    expect(await within(box).findByRole('alert')).toHaveTextContent('allows 3 sites; it has 4');
    refuse = false;
    await userEvent.clear(input);
    await userEvent.type(input, 'pro');
    await userEvent.click(within(box).getByRole('button', { name: 'Change plan' }));
    expect(await within(box).findByRole('status')).toHaveTextContent('The plan is now pro.');
    expect(JSON.parse(calls.filter((c) => c.method === 'PATCH')[1].body)).toEqual({ plan: 'pro' });
    // Billing may not edit the branding.
    expect(screen.queryByRole('button', { name: 'Save branding' })).toBeNull();
  });

  it('saves the branding and refreshes the session (re-theming the portal)', async () => {
    const refresh = vi.fn(async () => {});
    const calls = mockAPI(
      route('GET', '/v1/orgs/acme', () => json(view)),
      route('PATCH', '/v1/orgs/acme', () => json(view)),
    );
    renderPage(<Plan />, { path: '/plan', session: { refresh } });
    const box = await screen.findByRole('region', { name: 'Branding' });
    expect(within(box).getByLabelText('Product name')).toHaveValue('AcmePress');
    await userEvent.type(within(box).getByLabelText('Primary colour'), '#112233');
    await userEvent.type(within(box).getByLabelText('Support e-mail'), 'help@acme.example');
    await userEvent.click(within(box).getByRole('button', { name: 'Save branding' }));
    expect(await within(box).findByRole('status')).toHaveTextContent('Branding saved.');
    await waitFor(() => expect(refresh).toHaveBeenCalled());
    expect(JSON.parse(calls.find((c) => c.method === 'PATCH')!.body)).toEqual({
      branding: { product_name: 'AcmePress', logo_url: '', primary_color: '#112233', accent_color: '', support_email: 'help@acme.example' },
    });
  });

  it("shows the server's message when the organisation cannot be read", async () => {
    mockAPI(route('GET', '/v1/orgs/acme', () => json({ error: { code: 'not_found', message: 'organisation acme not found' } }, 404)));
    renderPage(<Plan />, { path: '/plan' });
    expect(await screen.findByRole('alert')).toHaveTextContent('organisation acme not found');
  });
});
