// A job's live progress: <JobProgress jobId onDone/> polls GET /v1/jobs/{id}
// while the job is Pending or Running and shows its bar, message and final
// state; JobProgressBar draws one job already fetched (the jobs list).
import { Alert, Badge, Group, Progress, Stack, Text } from '@mantine/core';
import { useEffect, useRef, useState } from 'react';
import { api, errorText, must, APIError, type Job } from '../api/client';
import { phaseColor } from './SitesFormat';

/** active is true while a job may still change. */
export function jobActive(j: Pick<Job, 'phase'> | undefined): boolean {
  return !j || j.phase === 'Pending' || j.phase === 'Running';
}

/** jobPercent is the job's progress in percent, or undefined when its total is unknown. */
export function jobPercent(j: Job): number | undefined {
  if (j.phase === 'Succeeded') return 100;
  const done = j.progress?.done ?? 0;
  const total = j.progress?.total ?? 0;
  if (total <= 0) return undefined;
  return Math.max(0, Math.min(100, (done / total) * 100));
}

/** JobProgressBar draws a job's bar (aria-label "Job progress") and its message. */
export function JobProgressBar({ job, compact = false }: { job: Job; compact?: boolean }) {
  const pct = jobPercent(job);
  const running = jobActive(job);
  // An unknown total shows a full striped bar while the job runs.
  const value = pct ?? (running ? 100 : job.phase === 'Failed' ? 100 : 0);
  const color = job.phase === 'Failed' ? 'red' : job.phase === 'Succeeded' ? 'green' : 'blue';
  const message = job.progress?.message || (job.phase === 'Pending' ? 'Waiting to start' : '');
  return (
    <Stack gap={4}>
      <Progress
        aria-label="Job progress"
        value={value}
        color={color}
        striped={running}
        animated={running}
        size={compact ? 'sm' : 'md'}
        aria-valuetext={pct === undefined ? (running ? 'in progress' : job.phase) : `${Math.round(pct)} %`}
      />
      {message && (
        <Text size={compact ? 'xs' : 'sm'} c="dimmed" lineClamp={compact ? 1 : undefined}>
          {message}
          {pct !== undefined && running ? ` (${Math.round(pct)} %)` : ''}
        </Text>
      )}
    </Stack>
  );
}

export interface JobProgressProps {
  /** jobId is the job to follow. */
  jobId: string;
  /** onDone is called once, when the job has Succeeded or Failed. */
  onDone?: (job: Job) => void;
  /** intervalMs is the polling period while the job runs (default 1500). */
  intervalMs?: number;
}

/**
 * JobProgress follows one job: it polls GET /v1/jobs/{id} every 1.5 s while
 * the job is Pending or Running, stops when it is done or unmounted, and
 * calls onDone once with the final job.
 */
export function JobProgress({ jobId, onDone, intervalMs = 1500 }: JobProgressProps) {
  const [job, setJob] = useState<Job | null>(null);
  const [err, setErr] = useState('');
  const done = useRef(onDone);
  done.current = onDone;

  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    setJob(null);
    setErr('');
    const tick = async () => {
      let again = true;
      try {
        const j = await must(api.GET('/v1/jobs/{id}', { params: { path: { id: jobId } } }));
        if (stop) return;
        setJob(j);
        setErr('');
        if (!jobActive(j)) {
          again = false;
          done.current?.(j);
        }
      } catch (e) {
        if (stop) return;
        setErr(errorText(e));
        // A job that is not there (or not ours) will not appear by waiting.
        if (e instanceof APIError && (e.status === 404 || e.status === 403 || e.status === 401)) again = false;
      }
      if (again && !stop) timer = setTimeout(tick, intervalMs);
    };
    void tick();
    return () => {
      stop = true;
      if (timer) clearTimeout(timer);
    };
  }, [jobId, intervalMs]);

  return (
    <Stack gap="xs" data-testid="job-progress">
      {err && (
        <Alert color="red" role="alert" title="Could not read the job">
          {err}
        </Alert>
      )}
      {!job && !err && (
        <Progress aria-label="Job progress" value={100} striped animated aria-valuetext="starting" />
      )}
      {job && (
        <>
          <Group gap="xs">
            <Badge color={phaseColor(job.phase)} variant="light">
              {job.phase}
            </Badge>
            <Text size="sm">
              {job.kind}
              {job.site ? ` of ${job.site}` : ''}
            </Text>
          </Group>
          <JobProgressBar job={job} />
          {job.phase === 'Failed' && job.error && (
            <Alert color="red" title="The job failed">
              {job.error}
            </Alert>
          )}
        </>
      )}
    </Stack>
  );
}

export default JobProgress;
