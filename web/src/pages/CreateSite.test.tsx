import { configure, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { domainError } from '../components/SitesFormat';
import { json, mockAPI, renderPage, route } from '../test/render';
import CreateSite, { titleError } from './CreateSite';

// jsdom lacks scrollIntoView; Mantine's Select scrolls to the chosen option.
beforeEach(() => {
  Element.prototype.scrollIntoView = vi.fn();
});
// A ceiling for slow, shared machines, not a performance target.
vi.setConfig({ testTimeout: 30000 });
configure({ asyncUtilTimeout: 5000 });
afterEach(() => vi.unstubAllGlobals());

const orgs = (...names: string[]) =>
  route('GET', '/v1/orgs', () => json({ items: names.map((name) => ({ name, kind: 'customer', plan: 'basic', created_at: '2026-01-01T00:00:00Z' })) }));

const createdSite = (phase: string) => ({
  metadata: { name: 'blog.localhost', uid: 'u1', generation: 1, created_at: '2026-12-05T10:00:00Z', resource_version: 1, org: 'acme' },
  spec: { domain: 'blog.localhost', title: 'My blog', plan: 'basic' },
  status: { phase, shard: 'shard-1', url: 'http://blog.localhost' },
});

async function put(label: RegExp, text: string) {
  const el = screen.getByLabelText(label);
  await userEvent.clear(el);
  await userEvent.click(el);
  await userEvent.paste(text);
}

async function fill(domain: string) {
  await put(/^Domain/, domain);
  await put(/^Title/, 'My blog');
  await put(/^Admin e-mail/, 'ann@acme.example');
}

describe('CreateSite', () => {
  it('creates the site, shows the password once with its live status, then goes to the site', async () => {
    let gets = 0;
    const calls = mockAPI(
      orgs('acme'),
      route('POST', '/v1/sites', () =>
        json(
          {
            domain: 'blog.localhost',
            url: 'http://blog.localhost',
            status: 'Pending',
            shard: 'shard-1',
            admin_user: 'admin',
            admin_password: 'S3cret-Once-Only',
            site: createdSite('Pending'),
          },
          201,
        ),
      ),
      route('GET', '/v1/sites/blog.localhost', () => json(createdSite(gets++ === 0 ? 'Creating' : 'Ready'))),
    );
    const { location } = renderPage(<CreateSite pollMs={10} />, { path: '/sites/new' });
    expect(screen.getByRole('heading', { name: 'Create site' })).toBeInTheDocument();
    // One organisation: nothing to choose.
    await waitFor(() => expect(calls.some((c) => c.path.startsWith('/v1/orgs'))).toBe(true));
    expect(screen.queryByRole('textbox', { name: /Organisation/ })).toBeNull();
    await fill('Blog.Localhost');
    await userEvent.click(screen.getByRole('button', { name: 'Create site' }));
    expect(await screen.findByTestId('admin-password')).toHaveTextContent('S3cret-Once-Only');
    expect(screen.getByTestId('admin-user')).toHaveTextContent('admin');
    expect(screen.getByRole('button', { name: 'Copy password' })).toBeInTheDocument();
    const post = calls.find((c) => c.method === 'POST')!;
    expect(JSON.parse(post.body)).toEqual({ domain: 'blog.localhost', title: 'My blog', admin_email: 'ann@acme.example', org: 'acme' });
    // The status follows the site until it is Ready.
    await waitFor(() => expect(screen.getByTestId('create-status')).toHaveTextContent('Ready'), { timeout: 10000 });
    await userEvent.click(screen.getByRole('button', { name: 'Continue to site' }));
    expect(location.history).toContain('/sites/blog.localhost');
  });

  it('refuses an invalid domain before asking the API', async () => {
    const calls = mockAPI(orgs('acme'));
    renderPage(<CreateSite />, { path: '/sites/new' });
    await fill('my_blog.localhost');
    await userEvent.click(screen.getByRole('button', { name: 'Create site' }));
    expect(await screen.findByText('Only letters, digits, hyphens and dots are allowed')).toBeInTheDocument();
    expect(calls.filter((c) => c.method === 'POST')).toEqual([]);
  });

  it.each([
    [409, 'already_exists', 'site "blog.localhost" already exists'],
    [403, 'quota_exceeded', 'plan basic allows 3 sites; acme has 3'],
    [400, 'invalid_domain', 'invalid domain: "blog.localhost" is reserved'],
  ])("shows the server's message on %i", async (status, code, message) => {
    mockAPI(orgs('acme'), route('POST', '/v1/sites', () => json({ error: { code, message } }, status)));
    renderPage(<CreateSite />, { path: '/sites/new' });
    await fill('blog.localhost');
    await userEvent.click(screen.getByRole('button', { name: 'Create site' }));
    expect(await screen.findByRole('alert')).toHaveTextContent(message);
    expect(screen.queryByTestId('admin-password')).toBeNull();
  });

  it('lets a member of several organisations choose one', async () => {
    const calls = mockAPI(
      orgs('acme', 'beta'),
      route('POST', '/v1/sites', () => json({ error: { code: 'forbidden', message: 'stop here' } }, 403)),
    );
    renderPage(<CreateSite />, { path: '/sites/new', session: { orgs: { acme: 'owner', beta: 'developer' } } });
    await fill('blog.localhost');
    await userEvent.click(await screen.findByRole('textbox', { name: /Organisation/ }));
    await userEvent.click(await screen.findByRole('option', { name: 'beta' }));
    await userEvent.click(screen.getByRole('button', { name: 'Create site' }));
    await screen.findByRole('alert');
    expect(JSON.parse(calls.find((c) => c.method === 'POST')!.body).org).toBe('beta');
  });

  it('lets platform staff leave the organisation empty (the default one)', async () => {
    const calls = mockAPI(
      orgs('acme', 'beta', 'gamma'),
      route('POST', '/v1/sites', () => json({ error: { code: 'forbidden', message: 'stop here' } }, 403)),
    );
    renderPage(<CreateSite />, { path: '/sites/new', session: { orgs: {}, org: '', platform: true } });
    await fill('blog.localhost');
    expect(await screen.findByRole('textbox', { name: /Organisation/ })).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Create site' }));
    await screen.findByRole('alert');
    expect(JSON.parse(calls.find((c) => c.method === 'POST')!.body)).not.toHaveProperty('org');
  });
});

describe('domainError', () => {
  it.each([
    ['blog.localhost', ''],
    ['Blog.Example.COM', ''],
    ['xn--bcher-kva.example', ''],
    ['', 'Enter the site’s domain, e.g. blog.example.com'],
    ['localhost', 'Needs at least two labels (e.g. blog.localhost)'],
    ['bücher.example', 'Only letters, digits, hyphens and dots are allowed (an international name in its xn-- form)'],
    ['a..b', 'Has an empty label (two dots in a row, or a dot at either end)'],
    ['blog.localhost.', 'Has an empty label (two dots in a row, or a dot at either end)'],
    ['-a.example', 'Label “-a” starts or ends with a hyphen'],
    ['*.example.com', 'Wildcards are not allowed'],
    ['10.0.0.1', 'Looks like an IP address, not a host name'],
    ['a'.repeat(64) + '.example', `Label “${'a'.repeat(64)}” is longer than 63 characters`],
  ])('domainError(%j)', (d, want) => {
    expect(domainError(d)).toBe(want);
  });

  it.each([
    ['My blog', ''],
    ['  ', 'Enter a title'],
    ['a\nb', 'No line breaks or control characters'],
    ['x'.repeat(201), 'At most 200 characters'],
  ])('titleError(%j)', (t, want) => {
    expect(titleError(t)).toBe(want);
  });
});
