import { configure, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Route, Switch } from 'wouter';
import { json, mockAPI, renderPage, route } from '../test/render';
import Jobs, { jobsPath, merge } from './Jobs';

// jsdom lacks scrollIntoView; Mantine's Select scrolls to the chosen option.
beforeEach(() => {
  Element.prototype.scrollIntoView = vi.fn();
});
// A ceiling for slow, shared machines, not a performance target.
vi.setConfig({ testTimeout: 30000 });
configure({ asyncUtilTimeout: 5000 });
afterEach(() => vi.unstubAllGlobals());

const job = (id: string, over: Record<string, unknown> = {}) => ({
  id,
  kind: 'backup',
  site: 'blog.localhost',
  shard: 'shard-1',
  phase: 'Succeeded',
  attempts: 1,
  progress: { done: 4, total: 4, message: 'snapshot 1a2b3c' },
  created_at: new Date(Date.now() - 3 * 60_000).toISOString(),
  finished_at: new Date(Date.now() - 60_000).toISOString(),
  resource_version: 1,
  ...over,
});

const page = (path: string, pollMs = 10) => {
  const ui = (
    <Switch>
      <Route path="/jobs/:id">
        <Jobs pollMs={pollMs} />
      </Route>
      <Route path="/jobs">
        <Jobs pollMs={pollMs} />
      </Route>
    </Switch>
  );
  return { ui, path };
};

const noSites = route('GET', '/v1/sites', () => json({ items: [], revision: 1 }));

describe('Jobs list', () => {
  it('lists jobs with the filters of the URL and refreshes while one runs', async () => {
    // The job runs until the test has seen it running.
    let finished = false;
    const calls = mockAPI(
      noSites,
      route('GET', '/v1/jobs', () =>
        json({
          items: [
            job('job-2', !finished ? { phase: 'Running', progress: { done: 1, total: 4, message: 'copying files' }, finished_at: undefined } : {}),
            job('job-1', { kind: 'restore', phase: 'Failed', error: 'snapshot not found' }),
          ],
        }),
      ),
    );
    const { ui, path } = page('/jobs?phase=Running,Failed');
    renderPage(ui, { path, session: { platform: true, org: '' } });
    expect(await screen.findByText('copying files (25 %)')).toBeInTheDocument();
    const rows = screen.getAllByTestId('job-row');
    expect(within(rows[0]).getByRole('link', { name: /Job job-2: backup/ })).toHaveAttribute('href', '/jobs/job-2');
    expect(within(rows[0]).getByRole('link', { name: 'blog.localhost' })).toHaveAttribute('href', '/sites/blog.localhost');
    expect(within(rows[0]).getByRole('progressbar', { name: 'Job progress' })).toHaveAttribute('aria-valuenow', '25');
    expect(within(rows[0]).getByText('3 minutes ago')).toBeInTheDocument();
    expect(within(rows[1]).getByText('snapshot not found')).toBeInTheDocument();
    expect(calls.find((c) => c.path.startsWith('/v1/jobs'))!.path).toBe('/v1/jobs?phase=Running%2CFailed&limit=100');
    // The running job is read again until it is done; then polling stops.
    finished = true;
    await waitFor(() => expect(within(screen.getAllByTestId('job-row')[0]).getByText('Succeeded')).toBeInTheDocument());
    const polls = calls.filter((c) => c.path.startsWith('/v1/jobs')).length;
    expect(polls).toBeGreaterThanOrEqual(2);
    await new Promise((r) => setTimeout(r, 50));
    expect(calls.filter((c) => c.path.startsWith('/v1/jobs')).length).toBe(polls);
  });

  it('asks a customer to choose a site, then lists its jobs', async () => {
    const calls = mockAPI(
      route('GET', '/v1/sites', () => json({ items: [{ metadata: { name: 'blog.localhost' } }], revision: 1 })),
      route('GET', '/v1/jobs', () => json({ items: [job('job-1')] })),
    );
    const { ui, path } = page('/jobs');
    const { location } = renderPage(ui, { path });
    expect(await screen.findByText(/Choose a site to see its jobs/)).toBeInTheDocument();
    expect(calls.filter((c) => c.path.startsWith('/v1/jobs'))).toEqual([]);
    await userEvent.click(screen.getByRole('textbox', { name: 'Site' }));
    await userEvent.paste('blog.localhost');
    expect(await screen.findByTestId('job-row')).toBeInTheDocument();
    expect(calls.filter((c) => c.path.startsWith('/v1/jobs')).map((c) => c.path)).toEqual(['/v1/jobs?site=blog.localhost&limit=100']);
    expect(location.history.at(-1)).toBe('/jobs?site=blog.localhost');
  });

  it('filters by kind and pages with Load more', async () => {
    const calls = mockAPI(
      noSites,
      route('GET', '/v1/jobs', (_r, url) =>
        url.searchParams.get('continue')
          ? json({ items: [job('job-old', { kind: 'verify' })] })
          : json({ items: [job('job-new', { kind: url.searchParams.get('kind') || 'backup' })], continue: 'c1' }),
      ),
    );
    const { ui, path } = page('/jobs?site=blog.localhost');
    const { location } = renderPage(ui, { path });
    await screen.findByRole('link', { name: /Job job-new/ });
    await userEvent.click(screen.getByRole('textbox', { name: 'Kind' }));
    await userEvent.click(await screen.findByRole('option', { name: 'prune' }));
    await waitFor(() => expect(screen.getByRole('link', { name: /Job job-new: prune/ })).toBeInTheDocument());
    expect(location.history.at(-1)).toBe('/jobs?site=blog.localhost&kind=prune');
    await userEvent.click(screen.getByRole('button', { name: 'Load more' }));
    expect(await screen.findByRole('link', { name: /Job job-old: verify/ })).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Load more' })).toBeNull();
    expect(calls.filter((c) => c.path.startsWith('/v1/jobs')).map((c) => c.path)).toEqual([
      '/v1/jobs?site=blog.localhost&limit=100',
      '/v1/jobs?site=blog.localhost&kind=prune&limit=100',
      '/v1/jobs?site=blog.localhost&kind=prune&limit=100&continue=c1',
    ]);
  });

  it("shows the server's message", async () => {
    mockAPI(noSites, route('GET', '/v1/jobs', () => json({ error: { code: 'not_found', message: 'site "nope.localhost" not found' } }, 404)));
    const { ui, path } = page('/jobs?site=nope.localhost');
    renderPage(ui, { path });
    expect(await screen.findByRole('alert')).toHaveTextContent('site "nope.localhost" not found');
  });

  it('builds requests and merges pages', () => {
    expect(jobsPath({ site: '', phase: '', kind: '' })).toBe('/v1/jobs?limit=100');
    expect(jobsPath({ site: 'a.b', phase: 'Pending,Running', kind: 'backup' }, 'x')).toBe('/v1/jobs?site=a.b&phase=Pending%2CRunning&kind=backup&limit=100&continue=x');
    const a = job('a'), b = job('b'), b2 = job('b', { phase: 'Failed' }), c = job('c');
    expect(merge([c, b2] as never, [b, a] as never).map((j) => `${j.id}${j.phase[0]}`)).toEqual(['cS', 'bF', 'aS']);
  });
});

describe('Job detail', () => {
  it('shows parameters, attempts, result and error, polling while it runs', async () => {
    let finished = false;
    const calls = mockAPI(
      route('GET', '/v1/jobs/job-7', () =>
        json(
          !finished
            ? job('job-7', { kind: 'restore', phase: 'Running', attempts: 2, params: { snapshot: 'abc123', in_place: true }, progress: { done: 0, total: 0, message: 'restoring the database' }, finished_at: undefined })
            : job('job-7', { kind: 'restore', phase: 'Failed', attempts: 2, params: { snapshot: 'abc123', in_place: true }, error: 'mariadb: access denied', result: { time: '12s' } }),
        ),
      ),
    );
    const { ui, path } = page('/jobs/job-7');
    renderPage(ui, { path });
    expect(await screen.findByRole('heading', { name: 'Job job-7' })).toBeInTheDocument();
    expect(await screen.findByText('restoring the database')).toBeInTheDocument();
    expect(screen.getByRole('progressbar', { name: 'Job progress' })).toBeInTheDocument();
    expect(screen.getByLabelText('Parameters')).toHaveTextContent('"snapshot": "abc123"');
    finished = true;
    await waitFor(() => expect(screen.getByTestId('job-phase')).toHaveTextContent('Failed'));
    expect(screen.getByText('mariadb: access denied')).toBeInTheDocument();
    expect(screen.getByText('2')).toBeInTheDocument();
    expect(screen.getByLabelText('Result')).toHaveTextContent('"time": "12s"');
    const polls = calls.length;
    await new Promise((r) => setTimeout(r, 50));
    expect(calls.length).toBe(polls);
  });

  it("shows the server's message for an unknown job", async () => {
    mockAPI(route('GET', '/v1/jobs/nope', () => json({ error: { code: 'not_found', message: 'job "nope" not found' } }, 404)));
    const { ui, path } = page('/jobs/nope');
    renderPage(ui, { path });
    expect(await screen.findByRole('alert')).toHaveTextContent('job "nope" not found');
  });
});
