// The site page's Backups tab: the snapshots, "Back up now", restore in
// place and clone to a new domain, and restore to a point in time (either
// way), each followed to its end.
import { Anchor, Badge, Button, Center, Group, Loader, Modal, Paper, SegmentedControl, Stack, Table, Text, TextInput } from '@mantine/core';
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { Link } from 'wouter';
import { api, errorText, must, type Job, type Schemas, type Site } from '../api/client';
import { JobProgress } from './JobProgress';
import { ConfirmDialog, ErrorAlert, fmtBytes, fmtTime, phaseColor, type SitePerms } from './SiteShared';

type Backup = Schemas['BackupEntry'];

interface Running {
  id: string;
  label: string;
}

/** CloneWatch follows a new site until it is Ready or Failed. */
export function CloneWatch({ name, pollMs = 2000 }: { name: string; pollMs?: number }) {
  const [phase, setPhase] = useState<string>('Pending');
  const [err, setErr] = useState('');
  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const s = await must(api.GET('/v1/sites/{name}', { params: { path: { name } } }));
        if (stop) return;
        setErr('');
        const p = s.status.phase ?? 'Pending';
        setPhase(p);
        if (p === 'Ready' || p === 'Failed') return;
      } catch (e) {
        if (stop) return;
        setErr(errorText(e));
      }
      timer = setTimeout(tick, pollMs);
    };
    void tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [name, pollMs]);
  return (
    <Stack gap={4}>
      <Group gap="xs">
        <Text size="sm">
          Clone{' '}
          <Anchor component={Link} href={`/sites/${encodeURIComponent(name)}`}>
            {name}
          </Anchor>
          :
        </Text>
        <Badge color={phaseColor(phase)} data-testid="clone-status">
          {phase}
        </Badge>
      </Group>
      {phase !== 'Ready' && phase !== 'Failed' && <Text size="xs" c="dimmed">The new site is being built from the snapshot.</Text>}
      <ErrorAlert error={err} />
    </Stack>
  );
}

export function SiteBackups({ site, perms, pollMs }: { site: Site; perms: SitePerms; pollMs?: number }) {
  const name = site.metadata.name;
  const [items, setItems] = useState<Backup[] | null>(null);
  const [cont, setCont] = useState<string | undefined>();
  const [err, setErr] = useState('');
  const [running, setRunning] = useState<Running[]>([]);
  const [finished, setFinished] = useState<Job[]>([]);
  const [clones, setClones] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [restoreOf, setRestoreOf] = useState<Backup | null>(null);
  const [cloneOf, setCloneOf] = useState<Backup | null>(null);
  const [newDomain, setNewDomain] = useState('');
  const [dlgErr, setDlgErr] = useState('');
  const [pitrOpen, setPitrOpen] = useState(false);
  const [pitrAt, setPitrAt] = useState('');
  const [pitrMode, setPitrMode] = useState<'in_place' | 'new_domain'>('in_place');
  const [pitrDomain, setPitrDomain] = useState('');

  const load = useCallback(
    async (next?: string) => {
      try {
        const l = await must(api.GET('/v1/backups', { params: { query: { site: name, continue: next } } }));
        setItems((old) => (next ? [...(old ?? []), ...l.items] : l.items));
        setCont(l.continue);
        setErr('');
      } catch (e) {
        setErr(errorText(e));
        setItems((old) => old ?? []);
      }
    },
    [name],
  );

  useEffect(() => {
    void load();
  }, [load]);

  // Follow the backups and restores already under way (a scheduled
  // backup, or one started before this page was opened).
  useEffect(() => {
    let stop = false;
    must(api.GET('/v1/jobs', { params: { query: { site: name, phase: 'Pending,Running' } } }))
      .then((l) => {
        if (stop) return;
        const mine = l.items.filter((j) => j.kind === 'backup' || j.kind === 'restore');
        setRunning((r) => [...r, ...mine.filter((j) => !r.some((x) => x.id === j.id)).map((j) => ({ id: j.id, label: j.kind === 'backup' ? 'Backup' : 'Restore' }))]);
      })
      .catch(() => {
        // The list of snapshots still works; its own error is shown.
      });
    return () => {
      stop = true;
    };
  }, [name]);

  const done = useCallback(
    (j: Job) => {
      setRunning((r) => r.filter((x) => x.id !== j.id));
      setFinished((f) => [j, ...f.filter((x) => x.id !== j.id)].slice(0, 5));
      void load();
    },
    [load],
  );

  async function backupNow() {
    setBusy(true);
    setErr('');
    try {
      const j = await must(api.POST('/v1/sites/{name}/backups', { params: { path: { name } } }));
      setRunning((r) => (r.some((x) => x.id === j.id) ? r : [...r, { id: j.id, label: 'Backup' }]));
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  async function restore() {
    if (!restoreOf) return;
    setBusy(true);
    setDlgErr('');
    try {
      const r = await must(api.POST('/v1/backups/{ref}/restore', { params: { path: { ref: restoreOf.ref } }, body: { in_place: true } }));
      if (r.job) {
        const id = r.job.id;
        setRunning((x) => [...x, { id, label: `Restore of ${fmtTime(restoreOf.time)}` }]);
      }
      setRestoreOf(null);
    } catch (e) {
      setDlgErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  async function clone(e: FormEvent) {
    e.preventDefault();
    if (!cloneOf) return;
    setBusy(true);
    setDlgErr('');
    try {
      const domain = newDomain.trim().toLowerCase();
      const r = await must(api.POST('/v1/backups/{ref}/restore', { params: { path: { ref: cloneOf.ref } }, body: { new_domain: domain } }));
      const created = r.site?.metadata.name ?? domain;
      setClones((c) => [created, ...c.filter((x) => x !== created)]);
      setCloneOf(null);
      setNewDomain('');
    } catch (e) {
      setDlgErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  // restoreAt restores the site to a point in time: the time is the
  // browser's local time (a datetime-local field, to the second), sent as
  // RFC 3339 UTC.
  async function restoreAt(e: FormEvent) {
    e.preventDefault();
    const when = new Date(pitrAt);
    if (!pitrAt || Number.isNaN(when.getTime())) {
      setDlgErr('Give the date and time to restore to.');
      return;
    }
    setBusy(true);
    setDlgErr('');
    try {
      const at = when.toISOString().replace(/\.\d{3}Z$/, 'Z');
      const domain = pitrDomain.trim().toLowerCase();
      const body = pitrMode === 'in_place' ? { at, in_place: true } : { at, new_domain: domain };
      const r = await must(api.POST('/v1/sites/{name}/restore', { params: { path: { name } }, body }));
      if (r.job) {
        const id = r.job.id;
        setRunning((x) => [...x, { id, label: `Restore to ${fmtTime(at)}` }]);
      }
      if (r.site) {
        const created = r.site.metadata.name;
        setClones((c) => [created, ...c.filter((x) => x !== created)]);
      }
      setPitrOpen(false);
      setPitrAt('');
      setPitrDomain('');
    } catch (e) {
      setDlgErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Stack>
      <Group justify="space-between">
        <Text c="dimmed" size="sm">
          Snapshots of the database and wp-content, newest first.
        </Text>
        {perms.write && (
          <Group gap="xs">
            <Button variant="default" onClick={() => (setDlgErr(''), setPitrOpen(true))}>
              Restore to a point in time
            </Button>
            <Button onClick={backupNow} loading={busy && !restoreOf && !cloneOf && !pitrOpen}>
              Back up now
            </Button>
          </Group>
        )}
      </Group>
      <ErrorAlert error={err} />
      {(running.length > 0 || clones.length > 0 || finished.length > 0) && (
        <Paper withBorder p="sm">
          <Stack gap="sm">
            {running.map((r) => (
              <div key={r.id}>
                <Text size="sm" fw={600}>
                  {r.label}
                </Text>
                <JobProgress jobId={r.id} onDone={done} />
              </div>
            ))}
            {finished.map((j) => (
              <Text key={j.id} size="sm" c={j.phase === 'Succeeded' ? 'green' : 'red'} role={j.phase === 'Failed' ? 'alert' : undefined}>
                {j.kind === 'backup' ? 'Backup' : 'Restore'} {j.phase === 'Succeeded' ? 'finished' : `failed: ${j.error ?? ''}`}
              </Text>
            ))}
            {clones.map((c) => (
              <CloneWatch key={c} name={c} pollMs={pollMs} />
            ))}
          </Stack>
        </Paper>
      )}
      {items === null ? (
        <Center h={80}>
          <Loader aria-label="Loading backups" />
        </Center>
      ) : items.length === 0 ? (
        <Text c="dimmed">No backups yet.{perms.write ? ' Use "Back up now" to take the first one.' : ''}</Text>
      ) : (
        <Table.ScrollContainer minWidth={560}>
          <Table aria-label="Backups" striped highlightOnHover>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Taken</Table.Th>
                <Table.Th>Reason</Table.Th>
                <Table.Th>Size</Table.Th>
                <Table.Th>Stored</Table.Th>
                {perms.write && <Table.Th>Actions</Table.Th>}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((b) => (
                <Table.Tr key={b.ref} data-testid="backup-row">
                  <Table.Td>{fmtTime(b.time)}</Table.Td>
                  <Table.Td>{b.reason ?? ''}</Table.Td>
                  <Table.Td>{fmtBytes(b.total_bytes)}</Table.Td>
                  <Table.Td>{fmtBytes(b.stored_bytes)}</Table.Td>
                  {perms.write && (
                    <Table.Td>
                      <Group gap="xs" wrap="nowrap">
                        <Button size="xs" variant="light" onClick={() => (setDlgErr(''), setRestoreOf(b))}>
                          Restore
                        </Button>
                        <Button size="xs" variant="light" onClick={() => (setDlgErr(''), setCloneOf(b))}>
                          Clone
                        </Button>
                      </Group>
                    </Table.Td>
                  )}
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      {cont && (
        <Group>
          <Button variant="default" onClick={() => void load(cont)}>
            Load more backups
          </Button>
        </Group>
      )}
      <ConfirmDialog
        opened={!!restoreOf}
        title="Restore this backup in place?"
        action="Restore"
        danger
        busy={busy}
        error={dlgErr}
        onConfirm={restore}
        onClose={() => setRestoreOf(null)}
      >
        {`${name} goes into maintenance and comes back as it was on ${fmtTime(restoreOf?.time)}. Changes made since are replaced (a pre-restore backup is taken first); a failed restore leaves the site as it is.`}
      </ConfirmDialog>
      <Modal opened={pitrOpen} onClose={() => setPitrOpen(false)} title="Restore to a point in time" centered>
        <form onSubmit={restoreAt}>
          <Stack>
            <Text size="sm">
              The latest backup taken before that time is restored, and the database changes logged since are replayed up to it (to the second). Files are the backup&apos;s.
            </Text>
            <ErrorAlert error={dlgErr} />
            <TextInput label="Point in time (your local time)" type="datetime-local" step={1} required value={pitrAt} onChange={(e) => setPitrAt(e.currentTarget.value)} data-autofocus />
            <SegmentedControl
              aria-label="Where"
              value={pitrMode}
              onChange={(v) => setPitrMode(v as 'in_place' | 'new_domain')}
              data={[
                { value: 'in_place', label: 'In place' },
                { value: 'new_domain', label: 'Into a new site' },
              ]}
            />
            {pitrMode === 'in_place' ? (
              <Text size="sm" c="dimmed">{`${name} goes into maintenance and comes back as it was then; a failed restore leaves it as it is.`}</Text>
            ) : (
              <TextInput label="New domain" placeholder="then.example.com" required autoComplete="off" value={pitrDomain} onChange={(e) => setPitrDomain(e.currentTarget.value)} />
            )}
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setPitrOpen(false)}>
                Cancel
              </Button>
              <Button type="submit" color={pitrMode === 'in_place' ? 'red' : undefined} loading={busy} disabled={!pitrAt || (pitrMode === 'new_domain' && !pitrDomain.trim())}>
                Restore
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
      <Modal opened={!!cloneOf} onClose={() => setCloneOf(null)} title="Clone to a new site" centered>
        <form onSubmit={clone}>
          <Stack>
            <Text size="sm">
              A new site is built from the backup of {fmtTime(cloneOf?.time)}, with its URLs rewritten to the new domain.
            </Text>
            <ErrorAlert error={dlgErr} />
            <TextInput label="New domain" placeholder="staging.example.com" required autoComplete="off" value={newDomain} onChange={(e) => setNewDomain(e.currentTarget.value)} data-autofocus />
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setCloneOf(null)}>
                Cancel
              </Button>
              <Button type="submit" loading={busy} disabled={!newDomain.trim()}>
                Clone
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
    </Stack>
  );
}
