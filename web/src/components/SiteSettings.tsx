// The site page's Cache, WAF and Settings tabs: edits by PATCH
// /v1/sites/{name}, the cache purge, WAF events and secret rotation.
import { Autocomplete, Badge, Button, Center, Code, Group, Loader, NumberInput, Paper, Select, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useEffect, useState } from 'react';
import { api, errorText, must, type Schemas, type Site } from '../api/client';
import { JobProgress } from './JobProgress';
import { ErrorAlert, fmtTime, type SitePerms } from './SiteShared';

type Patch = Schemas['UpdateSiteRequest'];

/** usePatch sends a PATCH and reports the updated site, keeping busy and error state. */
function usePatch(site: Site, onChange: (s: Site) => void) {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const [saved, setSaved] = useState('');
  async function patch(body: Patch, what: string) {
    setBusy(true);
    setErr('');
    setSaved('');
    try {
      onChange(await must(api.PATCH('/v1/sites/{name}', { params: { path: { name: site.metadata.name } }, body })));
      setSaved(`${what} saved.`);
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  return { busy, err, saved, patch };
}

function Saved({ text }: { text: string }) {
  return text ? (
    <Text size="sm" c="green" role="status">
      {text}
    </Text>
  ) : null;
}

export function SiteCache({ site, perms, onChange }: { site: Site; perms: SitePerms; onChange(s: Site): void }) {
  const { busy, err, saved, patch } = usePatch(site, onChange);
  const [ttl, setTTL] = useState<number | string>(site.spec.cache?.ttl_seconds ?? 300);
  const [target, setTarget] = useState('');
  const [purging, setPurging] = useState(false);
  const [purgeErr, setPurgeErr] = useState('');
  const [purged, setPurged] = useState('');

  async function purge() {
    setPurging(true);
    setPurgeErr('');
    setPurged('');
    const t = target.trim();
    const body = !t ? undefined : t.startsWith('/') || t.includes('://') ? { url: t } : { tag: t };
    try {
      const r = await must(api.POST('/v1/sites/{name}/purge', { params: { path: { name: site.metadata.name } }, body }));
      setPurged(`Purged ${r.purged} cached ${r.purged === 1 ? 'object' : 'objects'}.`);
    } catch (e) {
      setPurgeErr(errorText(e));
    } finally {
      setPurging(false);
    }
  }

  return (
    <Stack maw={640}>
      <Paper withBorder p="md">
        <Stack>
          <Title order={3} size="h4">
            Purge
          </Title>
          <Text size="sm" c="dimmed">
            Removes the site's pages from the edge's page cache: all of them, or one page (a path or URL), or those with a cache tag (home, feed, archive, post-ID, term-ID).
          </Text>
          <ErrorAlert error={purgeErr} title="Could not purge" />
          <TextInput label="Page or tag (optional)" placeholder="/hello-world/ or post-12" value={target} onChange={(e) => setTarget(e.currentTarget.value)} disabled={!perms.write} />
          {perms.write && (
            <Group>
              <Button onClick={purge} loading={purging}>
                Purge cache
              </Button>
            </Group>
          )}
          <Saved text={purged} />
        </Stack>
      </Paper>
      <Paper withBorder p="md">
        <Stack>
          <Title order={3} size="h4">
            Page cache
          </Title>
          <ErrorAlert error={err} />
          <NumberInput label="Cache TTL (seconds)" description="How long an anonymous page stays fresh; 0 turns the page cache off (0–86400)." min={0} max={86400} value={ttl} onChange={setTTL} disabled={!perms.write} />
          {perms.write && (
            <Group>
              <Button onClick={() => void patch({ cache: { ttl_seconds: Number(ttl) } }, 'Cache TTL')} loading={busy} disabled={ttl === '' || Number(ttl) === (site.spec.cache?.ttl_seconds ?? 300)}>
                Save cache TTL
              </Button>
            </Group>
          )}
          <Saved text={saved} />
        </Stack>
      </Paper>
    </Stack>
  );
}

type WAFEvent = NonNullable<Schemas['WAFEventList']['items']>[number];

export function SiteWAF({ site, perms, onChange }: { site: Site; perms: SitePerms; onChange(s: Site): void }) {
  const { busy, err, saved, patch } = usePatch(site, onChange);
  const [mode, setMode] = useState<string>(site.spec.waf?.mode ?? 'block');
  const [pl, setPL] = useState<string>(String(site.spec.waf?.paranoia_level ?? 1));
  const [events, setEvents] = useState<WAFEvent[] | null>(null);
  const [evErr, setEvErr] = useState('');
  const name = site.metadata.name;

  useEffect(() => {
    let stop = false;
    must(api.GET('/v1/sites/{name}/waf/events', { params: { path: { name }, query: { limit: 100 } } }))
      .then((l) => !stop && setEvents(l.items ?? []))
      .catch((e) => {
        if (stop) return;
        setEvErr(errorText(e));
        setEvents([]);
      });
    return () => {
      stop = true;
    };
  }, [name]);

  const dirty = mode !== (site.spec.waf?.mode ?? 'block') || Number(pl) !== (site.spec.waf?.paranoia_level ?? 1);
  const excl = site.spec.waf?.exclusions ?? [];

  return (
    <Stack>
      <Paper withBorder p="md" maw={640}>
        <Stack>
          <ErrorAlert error={err} />
          <Select
            label="WAF mode"
            description="block refuses matching requests; detect only records them; off turns the firewall off."
            data={['off', 'detect', 'block']}
            value={mode}
            onChange={(v) => v && setMode(v)}
            allowDeselect={false}
            disabled={!perms.write}
          />
          <Select
            label="Paranoia level"
            description="Higher levels catch more attacks and more false positives (1–4)."
            data={['1', '2', '3', '4']}
            value={pl}
            onChange={(v) => v && setPL(v)}
            allowDeselect={false}
            disabled={!perms.write}
          />
          {perms.write && (
            <Group>
              <Button onClick={() => void patch({ waf: { mode: mode as 'off' | 'detect' | 'block', paranoia_level: Number(pl) } }, 'WAF settings')} loading={busy} disabled={!dirty}>
                Save WAF settings
              </Button>
            </Group>
          )}
          <Saved text={saved} />
          {excl.length > 0 && (
            <Text size="sm">
              Exclusions: {excl.map((x) => `${x.rule_id}:${x.path}${x.argument ? `:${x.argument}` : ''}`).join(', ')}
            </Text>
          )}
        </Stack>
      </Paper>
      <Title order={3} size="h4">
        Recent events
      </Title>
      <ErrorAlert error={evErr} title="Could not load the WAF events" />
      {events === null ? (
        <Center h={80}>
          <Loader aria-label="Loading WAF events" />
        </Center>
      ) : events.length === 0 ? (
        <Text c="dimmed">No WAF events in the last 7 days.</Text>
      ) : (
        <Table.ScrollContainer minWidth={720}>
          <Table aria-label="WAF events" striped>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Time</Table.Th>
                <Table.Th>Request</Table.Th>
                <Table.Th>Rule</Table.Th>
                <Table.Th>Action</Table.Th>
                <Table.Th>Suggested exclusion</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {events.map((ev, i) => (
                <Table.Tr key={ev.id ?? i} data-testid="waf-event">
                  <Table.Td>{fmtTime(ev.time)}</Table.Td>
                  <Table.Td style={{ overflowWrap: 'anywhere' }}>
                    {ev.method} {ev.path}
                    {ev.variable ? <Text size="xs" c="dimmed">{ev.variable}</Text> : null}
                  </Table.Td>
                  <Table.Td>
                    {ev.rule_id}
                    <Text size="xs" c="dimmed">
                      {ev.message}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Badge color={ev.action === 'block' ? 'red' : 'yellow'} variant="light">
                      {ev.action}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    {ev.suggestion?.excluded ? (
                      <Text size="sm">already excluded</Text>
                    ) : ev.suggestion ? (
                      <Stack gap={4} align="flex-start">
                        <Code>{ev.suggestion.flag ?? `${ev.suggestion.rule_id}:${ev.suggestion.path}`}</Code>
                        {perms.write && (
                          <Button
                            size="xs"
                            variant="light"
                            loading={busy}
                            onClick={() => {
                              const s = ev.suggestion!;
                              void patch({ waf: { add_exclusions: [{ rule_id: s.rule_id, path: s.path, ...(s.argument ? { argument: s.argument } : {}) }] } }, 'Exclusion');
                            }}
                          >
                            Add exclusion
                          </Button>
                        )}
                      </Stack>
                    ) : (
                      '—'
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}

const builtinPlans = ['dev', 'basic', 'pro', 'business'];

export function SiteSettings({ site, perms, onChange }: { site: Site; perms: SitePerms; onChange(s: Site): void }) {
  const { busy, err, saved, patch } = usePatch(site, onChange);
  const [title, setTitle] = useState(site.spec.title ?? '');
  const [plan, setPlan] = useState(site.spec.plan ?? '');
  const [rotating, setRotating] = useState<{ id: string; kind: string } | null>(null);
  const [rotErr, setRotErr] = useState('');
  const [rotDone, setRotDone] = useState('');
  const php = site.spec.php ?? {};

  async function rotate(kind: 'db-password' | 'salts') {
    setRotErr('');
    setRotDone('');
    try {
      const j = await must(api.POST('/v1/sites/{name}/secrets/rotate', { params: { path: { name: site.metadata.name } }, body: { kind } }));
      setRotating({ id: j.id, kind });
    } catch (e) {
      setRotErr(errorText(e));
    }
  }

  return (
    <Stack maw={640}>
      <ErrorAlert error={err} />
      <Paper withBorder p="md">
        <Stack>
          <TextInput label="Title" value={title} maxLength={200} onChange={(e) => setTitle(e.currentTarget.value)} disabled={!perms.write} />
          {perms.write && (
            <Group>
              <Button onClick={() => void patch({ title: title.trim() }, 'Title')} loading={busy} disabled={!title.trim() || title.trim() === site.spec.title}>
                Save title
              </Button>
            </Group>
          )}
        </Stack>
      </Paper>
      <Paper withBorder p="md">
        <Stack>
          <Autocomplete
            label="Plan"
            description="Resources change live on the site's shard; bounded by the organisation's plan."
            data={Array.from(new Set([...(site.spec.plan ? [site.spec.plan] : []), ...builtinPlans]))}
            value={plan}
            onChange={setPlan}
            disabled={!perms.write}
          />
          <Text size="sm" c="dimmed">
            PHP: {php.max_children ?? '—'} workers, {php.memory_limit_mb ?? '—'} MiB memory, {php.upload_max_mb ?? '—'} MiB uploads, {php.request_timeout_seconds ?? '—'} s timeout (set by the plan).
          </Text>
          {perms.write && (
            <Group>
              <Button onClick={() => void patch({ plan: plan.trim() }, 'Plan')} loading={busy} disabled={!plan.trim() || plan.trim() === site.spec.plan}>
                Change plan
              </Button>
            </Group>
          )}
        </Stack>
      </Paper>
      <Saved text={saved} />
      {perms.secrets && (
        <Paper withBorder p="md">
          <Stack>
            <Title order={3} size="h4">
              Secrets
            </Title>
            <Text size="sm" c="dimmed">
              Rotating the database password does not interrupt the site. New WordPress salts sign every user out.
            </Text>
            <ErrorAlert error={rotErr} />
            <Group>
              <Button variant="default" onClick={() => void rotate('db-password')} disabled={!!rotating}>
                Rotate database password
              </Button>
              <Button variant="default" onClick={() => void rotate('salts')} disabled={!!rotating}>
                Rotate WordPress salts
              </Button>
            </Group>
            {rotating && (
              <JobProgress
                jobId={rotating.id}
                onDone={(j) => {
                  setRotating(null);
                  setRotDone(j.phase === 'Succeeded' ? `Rotation of ${rotating.kind} finished.` : `Rotation of ${rotating.kind} failed: ${j.error ?? ''}`);
                }}
              />
            )}
            <Saved text={rotDone} />
          </Stack>
        </Paper>
      )}
    </Stack>
  );
}
