// Jobs: backups, restores, verifications, prunes, recoveries and secret
// rotations, newest first, filtered by site, phase and kind (in the URL, so
// a site's page can link to its jobs), refreshed while some run; /jobs/:id
// shows one job with its parameters, attempts, result and error.
import { Alert, Anchor, Autocomplete, Badge, Button, Code, Group, Loader, Paper, Select, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { useCallback, useEffect, useRef, useState } from 'react';
import { Link, useLocation, useParams, useSearch } from 'wouter';
import { api, errorText, must, raw, type Job } from '../api/client';
import { JobProgressBar, jobActive } from '../components/JobProgress';
import { dateTime, phaseColor, relativeTime } from '../components/SitesFormat';
import { useSession } from '../session';

export const KINDS = ['backup', 'restore', 'verify-restore', 'verify', 'prune', 'recover', 'secret.rotate'];
const PHASES = [
  { value: '', label: 'All phases' },
  { value: 'Pending,Running', label: 'Active (pending or running)' },
  { value: 'Pending', label: 'Pending' },
  { value: 'Running', label: 'Running' },
  { value: 'Succeeded', label: 'Succeeded' },
  { value: 'Failed', label: 'Failed' },
];
const PAGE = 100;

export interface JobsProps {
  /** pollMs is the refresh period while jobs run (tests shorten it). */
  pollMs?: number;
}

export default function Jobs({ pollMs = 2000 }: JobsProps) {
  const { id } = useParams<{ id?: string }>();
  return id ? <JobDetail id={decodeURIComponent(id)} pollMs={pollMs} /> : <JobList pollMs={pollMs} />;
}

interface JobPage {
  items: Job[];
  continue?: string;
}

/** jobsPath is the GET /v1/jobs request for one page. */
export function jobsPath(f: { site: string; phase: string; kind: string }, cont?: string): string {
  const p = new URLSearchParams();
  if (f.site) p.set('site', f.site);
  if (f.phase) p.set('phase', f.phase);
  if (f.kind) p.set('kind', f.kind);
  p.set('limit', String(PAGE));
  if (cont) p.set('continue', cont);
  return `/v1/jobs?${p}`;
}

/** merge puts a fresh first page in front of the jobs already loaded, replacing those it repeats. */
export function merge(fresh: Job[], old: Job[]): Job[] {
  const seen = new Set(fresh.map((j) => j.id));
  return fresh.concat(old.filter((j) => !seen.has(j.id)));
}

function JobList({ pollMs }: { pollMs: number }) {
  const s = useSession();
  const [, navigate] = useLocation();
  const search = useSearch();
  const params = new URLSearchParams(search);
  const phase = params.get('phase') ?? '';
  const kind = params.get('kind') ?? '';
  const siteParam = params.get('site') ?? '';
  const [siteInput, setSiteInput] = useState(siteParam);
  const [site] = useDebouncedValue(siteInput.trim().toLowerCase(), 400);
  const [siteNames, setSiteNames] = useState<string[]>([]);
  const [items, setItems] = useState<Job[]>([]);
  const [cont, setCont] = useState<string | undefined>();
  const [loading, setLoading] = useState(false);
  const [err, setErr] = useState('');
  const gen = useRef(0);
  // Customers see jobs one site at a time (the API asks them to name it).
  const needSite = !s.platform && site === '';

  const setFilter = useCallback(
    (k: string, v: string) => {
      const p = new URLSearchParams(search);
      if (v) p.set(k, v);
      else p.delete(k);
      const q = p.toString();
      navigate(q ? `/jobs?${q}` : '/jobs', { replace: true });
    },
    [navigate, search],
  );

  // The typed site filter goes into the URL once the user stops typing.
  useEffect(() => {
    if (site !== siteParam) setFilter('site', site);
  }, [site, siteParam, setFilter]);

  // Site names for the filter's suggestions.
  useEffect(() => {
    let stop = false;
    const p = new URLSearchParams({ limit: '1000' });
    if (s.org) p.set('org', s.org);
    raw<{ items: { metadata: { name: string } }[] }>('GET', `/v1/sites?${p}`)
      .then((l) => !stop && setSiteNames((l.items ?? []).map((x) => x.metadata.name)))
      .catch(() => {});
    return () => {
      stop = true;
    };
  }, [s.org]);

  const filters = { site, phase, kind };
  const key = `${site}|${phase}|${kind}`;

  // A new filter lists again from the newest job.
  useEffect(() => {
    const g = ++gen.current;
    setItems([]);
    setCont(undefined);
    setErr('');
    if (needSite) return;
    setLoading(true);
    raw<JobPage>('GET', jobsPath({ site, phase, kind }))
      .then((l) => {
        if (g !== gen.current) return;
        setItems(l.items ?? []);
        setCont(l.continue || undefined);
      })
      .catch((e) => g === gen.current && setErr(errorText(e)))
      .finally(() => g === gen.current && setLoading(false));
  }, [key, needSite]);

  // While some listed job runs, the newest page is read again.
  const running = items.some((j) => jobActive(j));
  useEffect(() => {
    if (!running) return;
    const g = gen.current;
    const t = setTimeout(async () => {
      try {
        const l = await raw<JobPage>('GET', jobsPath(filters));
        if (g === gen.current) setItems((old) => merge(l.items ?? [], old));
      } catch {
        // The next change of filters or a reload shows errors.
      }
    }, pollMs);
    return () => clearTimeout(t);
  }, [running, items, pollMs, key]);

  async function loadMore() {
    if (!cont) return;
    const g = gen.current;
    setLoading(true);
    try {
      const l = await raw<JobPage>('GET', jobsPath(filters, cont));
      if (g !== gen.current) return;
      setItems((old) => merge(old, l.items ?? []));
      setCont(l.continue || undefined);
    } catch (e) {
      if (g === gen.current) setErr(errorText(e));
    } finally {
      if (g === gen.current) setLoading(false);
    }
  }

  const now = Date.now();
  return (
    <Stack>
      <Title order={2}>Jobs</Title>
      <Group align="end" wrap="wrap">
        <Autocomplete
          label="Site"
          placeholder={s.platform ? 'All sites' : 'Choose a site'}
          data={siteNames}
          limit={20}
          value={siteInput}
          onChange={setSiteInput}
          w={{ base: '100%', xs: 260 }}
        />
        <Select
          label="Phase"
          data={PHASES}
          value={phase}
          onChange={(v) => setFilter('phase', v ?? '')}
          allowDeselect={false}
          w={{ base: '100%', xs: 230 }}
        />
        <Select
          label="Kind"
          data={[{ value: '', label: 'All kinds' }, ...KINDS.map((k) => ({ value: k, label: k }))]}
          value={kind}
          onChange={(v) => setFilter('kind', v ?? '')}
          allowDeselect={false}
          w={{ base: '100%', xs: 180 }}
        />
        {loading && <Loader size="sm" aria-label="Loading jobs" />}
      </Group>
      {err && (
        <Alert color="red" role="alert" title="Could not list the jobs">
          {err}
        </Alert>
      )}
      {needSite && <Text c="dimmed">Choose a site to see its jobs: backups, restores and other long operations.</Text>}
      {!needSite && !loading && !err && items.length === 0 && (
        <Text c="dimmed">No jobs{site || phase || kind ? ' match these filters' : ' yet'}. Backups, restores and other long operations appear here.</Text>
      )}
      {items.length > 0 && (
        <Table.ScrollContainer minWidth={820}>
          <Table verticalSpacing="xs" highlightOnHover aria-label="Jobs">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Kind</Table.Th>
                <Table.Th>Site</Table.Th>
                <Table.Th>Phase</Table.Th>
                <Table.Th w={260}>Progress</Table.Th>
                <Table.Th>Created</Table.Th>
                <Table.Th>Finished</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((j) => (
                <Table.Tr key={j.id} data-testid="job-row">
                  <Table.Td>
                    <Anchor component={Link} href={`/jobs/${encodeURIComponent(j.id)}`} aria-label={`Job ${j.id}: ${j.kind}`}>
                      {j.kind}
                    </Anchor>
                  </Table.Td>
                  <Table.Td>
                    {j.site ? (
                      <Anchor component={Link} href={`/sites/${encodeURIComponent(j.site)}`}>
                        {j.site}
                      </Anchor>
                    ) : (
                      <Text span c="dimmed" size="sm">
                        {j.shard ? `shard ${j.shard}` : 'platform'}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Badge color={phaseColor(j.phase)} variant="light">
                      {j.phase}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    {jobActive(j) ? (
                      <JobProgressBar job={j} compact />
                    ) : j.phase === 'Failed' ? (
                      <Text size="xs" c="red" lineClamp={1} title={j.error}>
                        {j.error || 'failed'}
                      </Text>
                    ) : (
                      <Text size="xs" c="dimmed" lineClamp={1}>
                        {j.progress?.message || 'done'}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td title={dateTime(j.created_at)}>
                    <Text size="sm">{relativeTime(j.created_at, now)}</Text>
                  </Table.Td>
                  <Table.Td title={dateTime(j.finished_at)}>
                    <Text size="sm">{relativeTime(j.finished_at, now)}</Text>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      {cont && (
        <Group justify="center">
          <Button variant="default" onClick={loadMore} loading={loading}>
            Load more
          </Button>
        </Group>
      )}
    </Stack>
  );
}

function JobDetail({ id, pollMs }: { id: string; pollMs: number }) {
  const [job, setJob] = useState<Job | null>(null);
  const [err, setErr] = useState('');

  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    setJob(null);
    setErr('');
    const tick = async () => {
      try {
        const j = await must(api.GET('/v1/jobs/{id}', { params: { path: { id } } }));
        if (stop) return;
        setJob(j);
        setErr('');
        if (jobActive(j)) timer = setTimeout(tick, pollMs);
      } catch (e) {
        if (!stop) setErr(errorText(e));
      }
    };
    void tick();
    return () => {
      stop = true;
      if (timer) clearTimeout(timer);
    };
  }, [id, pollMs]);

  return (
    <Stack>
      <Anchor component={Link} href="/jobs" size="sm">
        ← All jobs
      </Anchor>
      <Title order={2}>Job {id}</Title>
      {err && (
        <Alert color="red" role="alert" title="Could not read the job">
          {err}
        </Alert>
      )}
      {!job && !err && <Loader aria-label="Loading the job" />}
      {job && (
        <>
          <Paper withBorder p="md">
            <Stack>
              <Group gap="sm">
                <Badge color={phaseColor(job.phase)} variant="light" size="lg" data-testid="job-phase">
                  {job.phase}
                </Badge>
                <Text fw={600}>{job.kind}</Text>
                {job.site && (
                  <Text>
                    of{' '}
                    <Anchor component={Link} href={`/sites/${encodeURIComponent(job.site)}`}>
                      {job.site}
                    </Anchor>
                  </Text>
                )}
              </Group>
              <JobProgressBar job={job} />
              {job.error && (
                <Alert color="red" title="Error">
                  {job.error}
                </Alert>
              )}
              <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="xs">
                <Field label="Shard" value={job.shard || 'control plane'} />
                <Field label="Attempts" value={String(job.attempts)} />
                <Field label="Created" value={dateTime(job.created_at)} />
                <Field label="Started" value={dateTime(job.started_at) || '–'} />
                <Field label="Finished" value={dateTime(job.finished_at) || '–'} />
                {job.site_uid && <Field label="Site UID" value={job.site_uid} />}
              </SimpleGrid>
            </Stack>
          </Paper>
          <JSONBlock title="Parameters" value={job.params} />
          <JSONBlock title="Result" value={job.result} />
        </>
      )}
    </Stack>
  );
}

function Field({ label, value }: { label: string; value: string }) {
  return (
    <Group gap="xs" wrap="nowrap">
      <Text size="sm" c="dimmed" w={90}>
        {label}
      </Text>
      <Text size="sm">{value}</Text>
    </Group>
  );
}

function JSONBlock({ title, value }: { title: string; value: unknown }) {
  if (!value || (typeof value === 'object' && Object.keys(value).length === 0)) return null;
  return (
    <Stack gap={4}>
      <Title order={3} size="h5">
        {title}
      </Title>
      <Code block aria-label={title}>
        {JSON.stringify(value, null, 2)}
      </Code>
    </Stack>
  );
}
