// PLACEHOLDER (i11-wsite): the sites helper owns the real JobProgress;
// the merger keeps theirs. Same name and props: polls GET /v1/jobs/{id}
// and shows a progress bar until the job ends.
import { Progress, Stack, Text } from '@mantine/core';
import { useEffect, useRef, useState } from 'react';
import { api, errorText, must, type Job } from '../api/client';

export function JobProgress({ jobId, onDone }: { jobId: string; onDone?: (job: Job) => void }) {
  const [job, setJob] = useState<Job | null>(null);
  const [err, setErr] = useState('');
  const done = useRef(onDone);
  done.current = onDone;
  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const j = await must(api.GET('/v1/jobs/{id}', { params: { path: { id: jobId } } }));
        if (stop) return;
        setJob(j);
        if (j.phase === 'Succeeded' || j.phase === 'Failed') {
          done.current?.(j);
          return;
        }
      } catch (e) {
        if (stop) return;
        setErr(errorText(e));
      }
      timer = setTimeout(tick, 1500);
    };
    void tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [jobId]);
  const p = job?.progress;
  const pct = job?.phase === 'Succeeded' ? 100 : p?.total ? Math.min(100, (100 * (p.done ?? 0)) / p.total) : 0;
  return (
    <Stack gap={4}>
      <Progress aria-label="Job progress" value={pct} animated={job?.phase !== 'Succeeded' && job?.phase !== 'Failed'} />
      <Text size="sm" c="dimmed">
        {job ? `${job.kind} ${job.phase}${p?.message ? `: ${p.message}` : ''}${job.error ? `: ${job.error}` : ''}` : err || 'Starting…'}
      </Text>
    </Stack>
  );
}

export default JobProgress;
