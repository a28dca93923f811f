import { configure, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { json, mockAPI, renderPage, route } from '../test/render';
import { JobProgress } from './JobProgress';

// A ceiling for slow, shared machines, not a performance target.
vi.setConfig({ testTimeout: 30000 });
configure({ asyncUtilTimeout: 5000 });
afterEach(() => vi.unstubAllGlobals());

const job = (over: Record<string, unknown>) => ({
  id: 'job-1',
  kind: 'backup',
  site: 'blog.localhost',
  phase: 'Running',
  attempts: 1,
  progress: { done: 1, total: 4, message: 'copying files' },
  created_at: '2026-12-05T10:00:00Z',
  resource_version: 1,
  ...over,
});

describe('JobProgress', () => {
  it('polls while the job runs, then stops and calls onDone once', async () => {
    // The job runs until the test has seen it running.
    let finished = false;
    const calls = mockAPI(
      route('GET', '/v1/jobs/job-1', () =>
        json(finished ? job({ phase: 'Succeeded', progress: { done: 4, total: 4, message: 'done' }, finished_at: '2026-12-05T10:01:00Z' }) : job({})),
      ),
    );
    const onDone = vi.fn();
    renderPage(<JobProgress jobId="job-1" onDone={onDone} intervalMs={5} />);
    expect(await screen.findByText(/copying files/)).toBeInTheDocument();
    expect(screen.getByRole('progressbar', { name: 'Job progress' })).toHaveAttribute('aria-valuenow', '25');
    expect(onDone).not.toHaveBeenCalled();
    finished = true;
    await waitFor(() => expect(onDone).toHaveBeenCalledTimes(1));
    expect(onDone.mock.calls[0][0].phase).toBe('Succeeded');
    expect(screen.getByText('Succeeded')).toBeInTheDocument();
    expect(screen.getByRole('progressbar', { name: 'Job progress' })).toHaveAttribute('aria-valuenow', '100');
    const polled = calls.length;
    expect(polled).toBeGreaterThanOrEqual(2);
    // No polling after the end: a fourth answer would have been served.
    await new Promise((r) => setTimeout(r, 30));
    expect(calls.length).toBe(polled);
  });

  it('shows the error of a failed job', async () => {
    mockAPI(route('GET', '/v1/jobs/job-2', () => json(job({ id: 'job-2', phase: 'Failed', error: 'restic: repository locked' }))));
    const onDone = vi.fn();
    renderPage(<JobProgress jobId="job-2" onDone={onDone} />);
    expect(await screen.findByText('restic: repository locked')).toBeInTheDocument();
    expect(onDone).toHaveBeenCalledWith(expect.objectContaining({ phase: 'Failed' }));
  });

  it("shows the server's message when the job cannot be read, and stops on 404", async () => {
    const calls = mockAPI(route('GET', '/v1/jobs/nope', () => json({ error: { code: 'not_found', message: 'job "nope" not found' } }, 404)));
    renderPage(<JobProgress jobId="nope" intervalMs={5} />);
    expect(await screen.findByRole('alert')).toHaveTextContent('job "nope" not found');
    await new Promise((r) => setTimeout(r, 30));
    expect(calls.length).toBe(1);
  });
});
