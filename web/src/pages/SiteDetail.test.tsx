import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Route, Switch } from 'wouter';
import type { Job, Site } from '../api/client';
import { sitePerms } from '../components/SiteShared';
import { json, mockAPI, renderPage, route, session } from '../test/render';
import SiteDetail from './SiteDetail';

afterEach(() => vi.unstubAllGlobals());
// jsdom lacks scrollIntoView; Mantine's Select calls it.
Element.prototype.scrollIntoView ||= () => {};

function site(over: { phase?: string; suspended?: boolean; conditions?: Site['status']['conditions']; name?: string } = {}): Site {
  const name = over.name ?? 'blog.localhost';
  return {
    metadata: { name, uid: 'uid-1', generation: 1, created_at: '2026-12-01T10:00:00Z', resource_version: 7, org: 'acme' } as Site['metadata'],
    spec: {
      domain: name,
      title: 'My blog',
      plan: 'basic',
      suspended: over.suspended ?? false,
      php: { max_children: 5, memory_limit_mb: 256, upload_max_mb: 64, request_timeout_seconds: 120 },
      limits: { disk_mb: 2048, db_connections: 10 },
      admin: { user: 'admin', email: 'ann@acme.example' },
      cache: { ttl_seconds: 300 },
      waf: { mode: 'block', paranoia_level: 1 },
      https_redirect: false,
    },
    status: { phase: (over.phase ?? 'Ready') as 'Ready', shard: 'shard-1', url: `http://${name}:8080/`, conditions: over.conditions ?? [] },
  };
}

function job(over: Partial<Job> = {}): Job {
  return { id: 'job-1', kind: 'backup', site: 'blog.localhost', phase: 'Running', attempts: 1, progress: { done: 50, total: 100, message: 'uploading' }, created_at: '2026-12-01T10:00:00Z', resource_version: 1, ...over };
}

const backup = { ref: 'shard-1:abc123', repo: 'shard-1', id: 'abc123', site: 'blog.localhost', time: '2026-12-01T11:00:00Z', total_bytes: 4096, stored_bytes: 1024, reason: 'manual', job: 'job-0' };

const siteRoute = (s: Site = site()) => route('GET', '/v1/sites/blog.localhost', () => json(s));
const noJobs = route('GET', '/v1/jobs', () => json({ items: [] }));

function open(path: string, sess = {}) {
  return renderPage(
    <Switch>
      <Route path="/sites/:name/:tab">
        <SiteDetail pollMs={5} />
      </Route>
      <Route path="/sites/:name">
        <SiteDetail pollMs={5} />
      </Route>
      <Route path="/sites">
        <p>sites list</p>
      </Route>
    </Switch>,
    { path, session: sess },
  );
}

describe('SiteDetail', () => {
  it('polls a new site until it is Ready, showing its conditions meanwhile', async () => {
    let n = 0;
    const calls = mockAPI(
      route('GET', '/v1/sites/blog.localhost', () => {
        n++;
        return json(n < 3 ? site({ phase: 'Creating', conditions: [{ type: 'WordPress', status: 'False', reason: 'Installing', message: 'installing WordPress core' }] }) : site());
      }),
    );
    open('/sites/blog.localhost');
    expect(await screen.findByTestId('site-status')).toHaveTextContent('Creating');
    const watching = screen.getByRole('alert', { name: 'Provisioning' });
    expect(within(watching).getByText(/installing WordPress core/)).toBeInTheDocument();
    await waitFor(() => expect(screen.getByTestId('site-status')).toHaveTextContent('Ready'));
    expect(screen.queryByText(/installing WordPress core/)).not.toBeInTheDocument();
    expect(calls.filter((c) => c.path === '/v1/sites/blog.localhost').length).toBeGreaterThanOrEqual(3);
    expect(screen.getByRole('heading', { level: 2, name: 'blog.localhost' })).toBeInTheDocument();
    expect(screen.getByText('shard-1')).toBeInTheDocument();
  });

  it('shows the admin password passed by the create page once', async () => {
    mockAPI(siteRoute(site({ phase: 'Pending' })));
    history.replaceState({ created: { admin_user: 'admin', admin_password: 's3cret-pass' } }, '');
    open('/sites/blog.localhost');
    expect(await screen.findByTestId('admin-password')).toHaveTextContent('s3cret-pass');
    expect(history.state).toBeNull();
  });

  it('shows the server message when the site cannot be loaded', async () => {
    mockAPI(route('GET', '/v1/sites/gone.localhost', () => json({ error: { code: 'not_found', message: 'site "gone.localhost" not found' } }, 404)));
    open('/sites/gone.localhost');
    expect(await screen.findByRole('alert')).toHaveTextContent('site "gone.localhost" not found');
  });

  it('deletes only after the domain is typed, then goes to /sites', async () => {
    const calls = mockAPI(siteRoute(), route('DELETE', '/v1/sites/blog.localhost', () => json(site({ phase: 'Deleting' }), 202)));
    const { location } = open('/sites/blog.localhost');
    await userEvent.click(await screen.findByRole('button', { name: 'Delete site' }));
    const dlg = await screen.findByRole('dialog');
    const confirm = within(dlg).getByRole('button', { name: 'Delete site' });
    expect(confirm).toBeDisabled();
    await userEvent.type(within(dlg).getByLabelText(/Type the domain to confirm/), 'blog.localhos');
    expect(confirm).toBeDisabled();
    await userEvent.click(confirm);
    expect(calls.some((c) => c.method === 'DELETE')).toBe(false);
    await userEvent.type(within(dlg).getByLabelText(/Type the domain to confirm/), 't');
    expect(confirm).toBeEnabled();
    await userEvent.click(confirm);
    await waitFor(() => expect(location.history).toContain('/sites'));
    expect(calls.filter((c) => c.method === 'DELETE').map((c) => c.path)).toEqual(['/v1/sites/blog.localhost']);
  });

  it('suspends after confirmation', async () => {
    const calls = mockAPI(siteRoute(), route('POST', '/v1/sites/blog.localhost/suspend', () => json(site({ phase: 'Suspended', suspended: true }))));
    open('/sites/blog.localhost');
    await userEvent.click(await screen.findByRole('button', { name: 'Suspend' }));
    const dlg = await screen.findByRole('dialog');
    await userEvent.click(within(dlg).getByRole('button', { name: 'Suspend' }));
    await waitFor(() => expect(screen.getByTestId('site-status')).toHaveTextContent('Suspended'));
    expect(calls.filter((c) => c.path.endsWith('/suspend'))).toHaveLength(1);
    expect(await screen.findByRole('button', { name: 'Resume' })).toBeInTheDocument();
  });

  it('opens wp-admin with a one-time link', async () => {
    const url = 'http://blog.localhost:8080/?aipress_login=tok';
    const calls = mockAPI(siteRoute(), route('POST', '/v1/sites/blog.localhost/login-link', () => json({ url, expires_at: '2026-12-01T10:02:00Z', user: 'admin' })));
    const win = vi.fn();
    vi.stubGlobal('open', win);
    open('/sites/blog.localhost');
    await userEvent.click(await screen.findByRole('button', { name: 'Open wp-admin' }));
    await waitFor(() => expect(win).toHaveBeenCalledWith(url, '_blank', 'noopener'));
    expect(calls.filter((c) => c.method === 'POST')).toHaveLength(1);
    expect(screen.getByRole('link', { name: 'open wp-admin' })).toHaveAttribute('href', url);
  });

  it('never links to or opens a non-http(s) URL from the API', async () => {
    const bad = site();
    bad.status.url = 'javascript:alert(document.cookie)';
    mockAPI(siteRoute(bad), route('POST', '/v1/sites/blog.localhost/login-link', () => json({ url: 'javascript:alert(1)', expires_at: '2026-12-01T10:02:00Z', user: 'admin' })));
    const win = vi.fn();
    vi.stubGlobal('open', win);
    const { container } = open('/sites/blog.localhost');
    await userEvent.click(await screen.findByRole('button', { name: 'Open wp-admin' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('not an http(s) address');
    expect(win).not.toHaveBeenCalled();
    // The URL is shown as text, never as a link.
    expect(screen.getAllByText('javascript:alert(document.cookie)').length).toBeGreaterThan(0);
    expect(container.querySelectorAll('a[href^="javascript"], a[href^="JAVASCRIPT"]')).toHaveLength(0);
    expect(screen.queryByRole('link', { name: 'open wp-admin' })).toBeNull();
  });

  it('hides the actions a viewer may not take', async () => {
    mockAPI(siteRoute(), route('GET', '/v1/backups', () => json({ items: [backup] })), noJobs);
    open('/sites/blog.localhost/backups', { orgs: { acme: 'viewer' }, me: { ...session().me!, orgs: { acme: 'viewer' } } });
    expect(await screen.findAllByTestId('backup-row')).toHaveLength(1);
    for (const b of ['Open wp-admin', 'Suspend', 'Delete site', 'Back up now', 'Restore', 'Clone']) {
      expect(screen.queryByRole('button', { name: b })).not.toBeInTheDocument();
    }
  });

  it('switches tabs through the URL', async () => {
    mockAPI(siteRoute(), route('GET', '/v1/sites/blog.localhost/waf/events', () => json({ items: [{ id: 1, time: '2026-12-01T10:00:00Z', method: 'GET', path: '/', rule_id: 942100, message: 'SQL injection', action: 'block', suggestion: { rule_id: 942100, path: '/', argument: 's', flag: '942100:/:s' } }] })));
    const { location } = open('/sites/blog.localhost');
    await userEvent.click(await screen.findByRole('tab', { name: 'WAF' }));
    await waitFor(() => expect(location.history.at(-1)).toBe('/sites/blog.localhost/waf'));
    expect(await screen.findAllByTestId('waf-event')).toHaveLength(1);
    expect(screen.getByText('942100:/:s')).toBeInTheDocument();
  });

  it('saves the WAF mode and paranoia level by PATCH', async () => {
    const calls = mockAPI(
      siteRoute(),
      route('GET', '/v1/sites/blog.localhost/waf/events', () => json({ items: [] })),
      route('PATCH', '/v1/sites/blog.localhost', () => json(site())),
    );
    open('/sites/blog.localhost/waf');
    expect(await screen.findByText(/No WAF events/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole('textbox', { name: 'WAF mode' }));
    await userEvent.click(await screen.findByRole('option', { name: 'detect' }));
    await userEvent.click(screen.getByRole('button', { name: 'Save WAF settings' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PATCH')).toBe(true));
    expect(JSON.parse(calls.find((c) => c.method === 'PATCH')!.body)).toEqual({ waf: { mode: 'detect', paranoia_level: 1 } });
  });

  it('backs up now and shows the job progress', async () => {
    const calls = mockAPI(
      siteRoute(),
      route('GET', '/v1/backups', () => json({ items: [] })),
      noJobs,
      route('POST', '/v1/sites/blog.localhost/backups', () => json(job({ phase: 'Pending', progress: {} }), 202)),
      route('GET', '/v1/jobs/job-1', () => json(job())),
    );
    open('/sites/blog.localhost/backups');
    expect(await screen.findByText(/No backups yet/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Back up now' }));
    // The job's own bar (the placeholder bar before its first read is replaced).
    expect(await screen.findByText(/uploading/)).toBeInTheDocument();
    expect(screen.getByLabelText('Job progress')).toBeInTheDocument();
    await waitFor(() => expect(calls.some((c) => c.path === '/v1/jobs/job-1')).toBe(true));
    expect(calls.find((c) => c.path === '/v1/backups?site=blog.localhost')).toBeDefined();
  });

  it('follows a backup already running when the tab opens', async () => {
    mockAPI(
      siteRoute(),
      route('GET', '/v1/backups', () => json({ items: [backup] })),
      route('GET', '/v1/jobs', (_r, url) => json({ items: url.searchParams.get('site') === 'blog.localhost' && url.searchParams.get('phase') === 'Pending,Running' ? [job({ id: 'job-9' })] : [] })),
      route('GET', '/v1/jobs/job-9', () => json(job({ id: 'job-9' }))),
    );
    open('/sites/blog.localhost/backups');
    // The job's own bar (the placeholder bar before its first read is replaced).
    expect(await screen.findByText(/uploading/)).toBeInTheDocument();
    expect(screen.getByLabelText('Job progress')).toBeInTheDocument();
  });

  it('restores in place after confirmation and follows the job', async () => {
    const calls = mockAPI(
      siteRoute(),
      route('GET', '/v1/backups', () => json({ items: [backup] })),
      noJobs,
      route('POST', /^\/v1\/backups\/.*\/restore$/, () => json({ job: job({ id: 'job-2', kind: 'restore' }) }, 202)),
      route('GET', '/v1/jobs/job-2', () => json(job({ id: 'job-2', kind: 'restore' }))),
    );
    open('/sites/blog.localhost/backups');
    const row = (await screen.findAllByTestId('backup-row'))[0];
    await userEvent.click(within(row).getByRole('button', { name: 'Restore' }));
    const dlg = await screen.findByRole('dialog');
    await userEvent.click(within(dlg).getByRole('button', { name: 'Restore' }));
    // The job's own bar (the placeholder bar before its first read is replaced).
    expect(await screen.findByText(/uploading/)).toBeInTheDocument();
    expect(screen.getByLabelText('Job progress')).toBeInTheDocument();
    const post = calls.find((c) => c.method === 'POST')!;
    expect(post.path).toBe('/v1/backups/shard-1%3Aabc123/restore');
    expect(JSON.parse(post.body)).toEqual({ in_place: true });
  });

  it('clones a backup to a new domain and watches the new site', async () => {
    let polls = 0;
    const calls = mockAPI(
      siteRoute(),
      route('GET', '/v1/backups', () => json({ items: [backup] })),
      noJobs,
      route('POST', /^\/v1\/backups\/.*\/restore$/, () => json({ site: site({ name: 'copy.localhost', phase: 'Pending' }) }, 201)),
      route('GET', '/v1/sites/copy.localhost', () => json(site({ name: 'copy.localhost', phase: ++polls < 2 ? 'Creating' : 'Ready' }))),
    );
    open('/sites/blog.localhost/backups');
    const row = (await screen.findAllByTestId('backup-row'))[0];
    await userEvent.click(within(row).getByRole('button', { name: 'Clone' }));
    const dlg = await screen.findByRole('dialog');
    await userEvent.type(within(dlg).getByLabelText(/New domain/), 'Copy.localhost');
    await userEvent.click(within(dlg).getByRole('button', { name: 'Clone' }));
    await waitFor(() => expect(screen.getByTestId('clone-status')).toHaveTextContent('Ready'));
    expect(JSON.parse(calls.find((c) => c.method === 'POST')!.body)).toEqual({ new_domain: 'copy.localhost' });
    expect(screen.getByRole('link', { name: 'copy.localhost' })).toHaveAttribute('href', '/sites/copy.localhost');
  });

  it('restores to a point in time, in place and into a new site', async () => {
    const calls = mockAPI(
      siteRoute(),
      route('GET', '/v1/backups', () => json({ items: [backup] })),
      noJobs,
      route('POST', '/v1/sites/blog.localhost/restore', async (r) =>
        JSON.parse(await r.clone().text()).in_place
          ? json({ job: job({ id: 'job-3', kind: 'restore' }), snapshot: 'shard-1:abc123', at: '2026-12-05T10:42:07Z' }, 202)
          : json({ site: site({ name: 'then.localhost', phase: 'Ready' }), snapshot: 'shard-1:abc123' }, 201),
      ),
      route('GET', '/v1/jobs/job-3', () => json(job({ id: 'job-3', kind: 'restore' }))),
      route('GET', '/v1/sites/then.localhost', () => json(site({ name: 'then.localhost', phase: 'Ready' }))),
    );
    open('/sites/blog.localhost/backups');
    await screen.findAllByTestId('backup-row');
    await userEvent.click(screen.getByRole('button', { name: 'Restore to a point in time' }));
    let dlg = await screen.findByRole('dialog');
    const local = '2026-12-05T10:42:07';
    await userEvent.type(within(dlg).getByLabelText(/Point in time/), local);
    await userEvent.click(within(dlg).getByRole('button', { name: 'Restore' }));
    expect(await screen.findByText(/uploading/)).toBeInTheDocument();
    const posts = () => calls.filter((c) => c.method === 'POST' && c.path === '/v1/sites/blog.localhost/restore');
    const utc = new Date(local).toISOString().replace(/\.\d{3}Z$/, 'Z');
    expect(JSON.parse(posts()[0].body)).toEqual({ at: utc, in_place: true });

    await userEvent.click(screen.getByRole('button', { name: 'Restore to a point in time' }));
    dlg = await screen.findByRole('dialog');
    await userEvent.type(within(dlg).getByLabelText(/Point in time/), local);
    await userEvent.click(within(dlg).getByText('Into a new site'));
    await userEvent.type(within(dlg).getByLabelText(/New domain/), 'Then.localhost');
    await userEvent.click(within(dlg).getByRole('button', { name: 'Restore' }));
    await waitFor(() => expect(posts()).toHaveLength(2));
    expect(JSON.parse(posts()[1].body)).toEqual({ at: utc, new_domain: 'then.localhost' });
    await waitFor(() => expect(screen.getByTestId('clone-status')).toHaveTextContent('Ready'));
  });

  it('shows the server message of a refused clone in the dialog', async () => {
    mockAPI(
      siteRoute(),
      route('GET', '/v1/backups', () => json({ items: [backup] })),
      noJobs,
      route('POST', /^\/v1\/backups\/.*\/restore$/, () => json({ error: { code: 'already_exists', message: 'site "copy.localhost" exists' } }, 409)),
    );
    open('/sites/blog.localhost/backups');
    await userEvent.click(within((await screen.findAllByTestId('backup-row'))[0]).getByRole('button', { name: 'Clone' }));
    const dlg = await screen.findByRole('dialog');
    await userEvent.type(within(dlg).getByLabelText(/New domain/), 'copy.localhost');
    await userEvent.click(within(dlg).getByRole('button', { name: 'Clone' }));
    expect(await within(dlg).findByRole('alert')).toHaveTextContent('site "copy.localhost" exists');
  });

  it('draws the metrics charts and follows the range', async () => {
    const pt = (t: string, requests: number) => ({ t, requests, cache_hits: requests - 1, cache_misses: 1, errors_5xx: 0, p50_ms: 4.1, p99_ms: 80.3, php_ms: 35.2, waf_blocks: 0, bytes: 1000 });
    const calls = mockAPI(
      siteRoute(),
      route('GET', '/v1/sites/blog.localhost/metrics', (_r, url) =>
        json({
          site: 'blog.localhost',
          range: url.searchParams.get('range'),
          step_seconds: 60,
          points: [pt('2026-12-05T10:00:00Z', 12), pt('2026-12-05T10:01:00Z', 30)],
          totals: { requests: 42, cache_hits: 40, cache_misses: 2, errors_5xx: 0, waf_blocks: 0, bytes: 2000, cache_hit_ratio: 0.95, p50_ms: 4.1, p99_ms: 80.3, php_ms: 35.2 },
        }),
      ),
    );
    open('/sites/blog.localhost/metrics');
    expect(await screen.findByRole('img', { name: /Requests: requests peak 30/ })).toBeInTheDocument();
    for (const c of [/Cache hits and misses/, /Latency: p50 peak 4.1 ms, p99 peak 80.3 ms/, /PHP time/, /WAF blocks/]) {
      expect(screen.getByRole('img', { name: c })).toBeInTheDocument();
    }
    expect(screen.getByText('95 %')).toBeInTheDocument();
    await userEvent.click(screen.getByText('24h'));
    await waitFor(() => expect(calls.map((c) => c.path)).toContain('/v1/sites/blog.localhost/metrics?range=24h'));
    expect(calls.map((c) => c.path)).toContain('/v1/sites/blog.localhost/metrics?range=1h');
  });

  it('says so when the site had no traffic', async () => {
    mockAPI(
      siteRoute(),
      route('GET', '/v1/sites/blog.localhost/metrics', () =>
        json({ site: 'blog.localhost', range: '1h', step_seconds: 60, points: [], totals: { requests: 0, cache_hits: 0, cache_misses: 0, errors_5xx: 0, waf_blocks: 0, bytes: 0, p50_ms: 0, p99_ms: 0, php_ms: 0 } }),
      ),
    );
    open('/sites/blog.localhost/metrics');
    expect(await screen.findByTestId('metrics-empty')).toHaveTextContent('No traffic');
    expect(screen.queryByRole('img')).not.toBeInTheDocument();
  });

  it("shows the API's 403 message when it refuses a purge", async () => {
    const calls = mockAPI(siteRoute(), route('POST', '/v1/sites/blog.localhost/purge', () => json({ error: { code: 'forbidden', message: 'role viewer may not purge' } }, 403)));
    open('/sites/blog.localhost/cache');
    await userEvent.click(await screen.findByRole('button', { name: 'Purge cache' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('role viewer may not purge');
    expect(calls.filter((c) => c.method === 'POST')).toHaveLength(1);
  });

  it('purges the cache and edits its TTL', async () => {
    const calls = mockAPI(
      siteRoute(),
      route('POST', '/v1/sites/blog.localhost/purge', () => json({ purged: 3 })),
      route('PATCH', '/v1/sites/blog.localhost', () => json(site())),
    );
    open('/sites/blog.localhost/cache');
    await userEvent.click(await screen.findByRole('button', { name: 'Purge cache' }));
    expect(await screen.findByText('Purged 3 cached objects.')).toBeInTheDocument();
    const ttl = screen.getByLabelText(/Cache TTL/);
    await userEvent.clear(ttl);
    await userEvent.type(ttl, '60');
    await userEvent.click(screen.getByRole('button', { name: 'Save cache TTL' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PATCH')).toBe(true));
    expect(JSON.parse(calls.find((c) => c.method === 'PATCH')!.body)).toEqual({ cache: { ttl_seconds: 60 } });
  });

  it('changes the title by PATCH and shows a refused plan change', async () => {
    const calls = mockAPI(
      siteRoute(),
      route('PATCH', '/v1/sites/blog.localhost', async (req) => {
        const b = await req.json();
        if (b.plan) return json({ error: { code: 'quota_exceeded', message: 'plan pro exceeds the organisation plan basic' } }, 403);
        return json({ ...site(), spec: { ...site().spec, title: b.title } });
      }),
    );
    open('/sites/blog.localhost/settings');
    const title = await screen.findByLabelText('Title');
    await userEvent.clear(title);
    await userEvent.type(title, 'New title');
    await userEvent.click(screen.getByRole('button', { name: 'Save title' }));
    expect(await screen.findByText('Title saved.')).toBeInTheDocument();
    const plan = screen.getByRole('textbox', { name: /Plan/ });
    await userEvent.clear(plan);
    await userEvent.type(plan, 'pro');
    await userEvent.click(screen.getByRole('button', { name: 'Change plan' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('plan pro exceeds the organisation plan basic');
    expect(calls.filter((c) => c.method === 'PATCH').map((c) => JSON.parse(c.body))).toEqual([{ title: 'New title' }, { plan: 'pro' }]);
  });

  it('rotates a secret and follows its job', async () => {
    const calls = mockAPI(
      siteRoute(),
      route('POST', '/v1/sites/blog.localhost/secrets/rotate', () => json(job({ id: 'job-5', kind: 'secret.rotate' }), 202)),
      route('GET', '/v1/jobs/job-5', () => json(job({ id: 'job-5', kind: 'secret.rotate' }))),
    );
    open('/sites/blog.localhost/settings');
    await userEvent.click(await screen.findByRole('button', { name: 'Rotate WordPress salts' }));
    // The job's own bar (the placeholder bar before its first read is replaced).
    expect(await screen.findByText(/uploading/)).toBeInTheDocument();
    expect(screen.getByLabelText('Job progress')).toBeInTheDocument();
    expect(JSON.parse(calls.find((c) => c.method === 'POST')!.body)).toEqual({ kind: 'salts' });
  });

  it('lets only platform staff resume a site the platform suspended', async () => {
    const s = site({ phase: 'Suspended', suspended: true });
    s.spec.suspended_by = 'platform';
    mockAPI(siteRoute(s));
    open('/sites/blog.localhost');
    expect(await screen.findByTestId('site-status')).toHaveTextContent('Suspended');
    expect(screen.queryByRole('button', { name: 'Resume' })).not.toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Suspend' })).not.toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Delete site' })).toBeInTheDocument();
  });

  it('sets the HTTPS redirect on the Domains tab', async () => {
    const calls = mockAPI(siteRoute(), route('PATCH', '/v1/sites/blog.localhost', () => json(site())));
    open('/sites/blog.localhost/domains');
    await userEvent.click(await screen.findByRole('switch', { name: /Redirect HTTP to HTTPS/ }));
    await userEvent.click(screen.getByRole('button', { name: 'Save HTTPS settings' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PATCH')).toBe(true));
    expect(JSON.parse(calls.find((c) => c.method === 'PATCH')!.body)).toEqual({ https_redirect: true });
  });
});

describe('sitePerms', () => {
  const me = session().me!;
  it.each([
    ['owner', '', { write: true, suspend: true, secrets: true }],
    ['developer', '', { write: true, suspend: true, secrets: true }],
    ['viewer', '', { write: false, suspend: false, secrets: false }],
    ['billing', '', { write: false, suspend: false, secrets: false }],
    ['', 'admin', { write: true, suspend: true, secrets: true }],
    ['', 'support', { write: false, suspend: true, secrets: false }],
    ['', 'operator', { write: false, suspend: false, secrets: false }],
    ['viewer', 'support', { write: false, suspend: true, secrets: false }],
  ])('org role %s, platform role %s', (org, plat, want) => {
    const orgs: Record<string, string> = org ? { acme: org } : {};
    expect(sitePerms({ me: { ...me, platform_role: plat }, orgs, org: 'acme' }, 'acme')).toEqual(want);
  });
});
