// Shards (platform staff): capacity, health and placement; operators
// cordon, uncordon and drain them. A row opens the shard's details.
import { Anchor, Badge, Button, Drawer, Group, Loader, Progress, Stack, Table, Text, Title } from '@mantine/core';
import { useEffect, useState } from 'react';
import { api, must, type Schemas } from '../api/client';
import { ago, ConfirmDialog, ErrorAlert, fmtTime, percent, useLoad } from '../components/AdminCommon';
import { useSession } from '../session';

type Shard = Schemas['Shard'];
type Action = 'cordon' | 'uncordon' | 'drain';

/** DEFAULT_CAPACITY is what a capacity of 0 means (docs: the default, 50). */
const DEFAULT_CAPACITY = 50;

/** POLL_MS is how often the list is read again while a shard drains. */
export const POLL_MS = 2000;

const ACTIONS: Record<Action, { label: string; title: (n: string) => string; text: string; color: string }> = {
  cordon: { label: 'Cordon', title: (n) => `Cordon ${n}`, text: 'No new sites are placed on it; its sites stay and keep serving.', color: 'orange' },
  uncordon: { label: 'Uncordon', title: (n) => `Uncordon ${n}`, text: 'It takes new sites again; a drain in progress stops.', color: 'blue' },
  drain: {
    label: 'Drain',
    title: (n) => `Drain ${n}`,
    text: 'It is cordoned and every site on it is moved to other shards, one at a time. Sites stay up while they move.',
    color: 'red',
  },
};

function phaseColor(p: string): string {
  return p === 'Ready' ? 'green' : p === 'Unhealthy' ? 'red' : 'yellow';
}

function ShardState({ s }: { s: Shard }) {
  return (
    <Group gap={4}>
      <Badge color={phaseColor(s.phase)} title={s.phase_reason}>
        {s.phase}
      </Badge>
      {s.draining ? (
        <Badge color="red" variant="outline">
          draining
        </Badge>
      ) : (
        s.cordoned && (
          <Badge color="orange" variant="outline">
            cordoned
          </Badge>
        )
      )}
    </Group>
  );
}

export default function Shards() {
  const sess = useSession();
  const [pages, setPages] = useState<string[]>(['']);
  const cont = pages[pages.length - 1];
  const shards = useLoad(() => must(api.GET('/v1/shards', { params: { query: { limit: 100, ...(cont ? { continue: cont } : {}) } } })), [cont]);
  const [act, setAct] = useState<{ shard: Shard; action: Action } | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  // While a shard drains, its sites move away: follow it live.
  const draining = !!shards.data?.items.some((s) => s.draining);
  const { reload } = shards;
  useEffect(() => {
    if (!draining) return;
    const t = setInterval(() => void reload(), POLL_MS);
    return () => clearInterval(t);
  }, [draining, reload]);

  async function run(name: string, action: Action) {
    const p = { params: { path: { name } } };
    if (action === 'cordon') await must(api.POST('/v1/shards/{name}/cordon', p));
    else if (action === 'uncordon') await must(api.POST('/v1/shards/{name}/uncordon', p));
    else await must(api.POST('/v1/shards/{name}/drain', p));
    await shards.reload();
  }

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Shards</Title>
        <Button variant="default" onClick={() => void shards.reload()} loading={shards.loading && !!shards.data}>
          Refresh
        </Button>
      </Group>
      <ErrorAlert error={shards.error} />
      {shards.loading && !shards.data ? (
        <Loader aria-label="Loading shards" />
      ) : shards.data && shards.data.items.length === 0 ? (
        <Text c="dimmed">No shards have registered.</Text>
      ) : (
        <Table.ScrollContainer minWidth={760}>
          <Table striped aria-label="Shards">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>State</Table.Th>
                <Table.Th w={200}>Sites</Table.Th>
                <Table.Th>Last heartbeat</Table.Th>
                {sess.operator && <Table.Th>Actions</Table.Th>}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {shards.data?.items.map((s) => {
                const cap = s.capacity || DEFAULT_CAPACITY;
                const used = s.usage?.sites ?? 0;
                return (
                  <Table.Tr key={s.name} data-testid="shard-row">
                    <Table.Td>
                      <Anchor component="button" type="button" onClick={() => setOpen(s.name)}>
                        {s.name}
                      </Anchor>
                    </Table.Td>
                    <Table.Td>
                      <ShardState s={s} />
                    </Table.Td>
                    <Table.Td>
                      <Text size="xs">
                        {used} of {cap}
                      </Text>
                      <Progress value={percent(used, cap)} aria-label={`Capacity of ${s.name}`} color={used >= cap ? 'red' : undefined} />
                    </Table.Td>
                    <Table.Td title={fmtTime(s.last_heartbeat)}>{ago(s.last_heartbeat)}</Table.Td>
                    {sess.operator && (
                      <Table.Td>
                        <Group gap="xs" wrap="nowrap">
                          {s.cordoned || s.draining ? (
                            <Button size="xs" variant="light" onClick={() => setAct({ shard: s, action: 'uncordon' })}>
                              Uncordon
                            </Button>
                          ) : (
                            <Button size="xs" variant="light" color="orange" onClick={() => setAct({ shard: s, action: 'cordon' })}>
                              Cordon
                            </Button>
                          )}
                          {!s.draining && (
                            <Button size="xs" variant="light" color="red" onClick={() => setAct({ shard: s, action: 'drain' })}>
                              Drain
                            </Button>
                          )}
                        </Group>
                      </Table.Td>
                    )}
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      {(pages.length > 1 || shards.data?.continue) && (
        <Group>
          <Button variant="default" disabled={pages.length < 2} onClick={() => setPages((p) => p.slice(0, -1))}>
            Previous page
          </Button>
          <Button variant="default" disabled={!shards.data?.continue} onClick={() => shards.data?.continue && setPages((p) => [...p, shards.data!.continue!])}>
            Next page
          </Button>
        </Group>
      )}
      <ConfirmDialog
        opened={!!act}
        title={act ? ACTIONS[act.action].title(act.shard.name) : ''}
        confirm={act ? ACTIONS[act.action].label : ''}
        color={act ? ACTIONS[act.action].color : undefined}
        onClose={() => setAct(null)}
        onConfirm={() => (act ? run(act.shard.name, act.action) : Promise.resolve())}
      >
        {act && ACTIONS[act.action].text}
      </ConfirmDialog>
      <ShardDrawer name={open} onClose={() => setOpen(null)} />
    </Stack>
  );
}

function gb(b?: number): string {
  return b === undefined ? '—' : `${(b / 1e9).toFixed(2)} GB`;
}

function ShardDrawer({ name, onClose }: { name: string | null; onClose(): void }) {
  const d = useLoad(() => (name ? must(api.GET('/v1/shards/{name}', { params: { path: { name } } })) : Promise.resolve(undefined)), [name]);
  const s = d.data;
  return (
    <Drawer opened={!!name} onClose={onClose} title={`Shard ${name ?? ''}`} position="right">
      <ErrorAlert error={d.error} />
      {d.loading && !s && <Loader aria-label="Loading shard" />}
      {s && s.name === name && (
        <Stack gap="xs">
          <ShardState s={s} />
          {s.phase_reason && <Text size="sm">{s.phase_reason}</Text>}
          <Table variant="vertical" aria-label="Shard details">
            <Table.Tbody>
              <Table.Tr>
                <Table.Th>Sites placed</Table.Th>
                <Table.Td data-testid="shard-sites">{s.sites ?? 0}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Capacity</Table.Th>
                <Table.Td>{s.capacity || `${DEFAULT_CAPACITY} (default)`}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Serving</Table.Th>
                <Table.Td>{s.usage?.serving ?? '—'}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Disk</Table.Th>
                <Table.Td>{gb(s.usage?.disk_bytes)}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Memory</Table.Th>
                <Table.Td>{gb(s.usage?.memory_bytes)}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Provider</Table.Th>
                <Table.Td>{s.provider || '—'}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Agent</Table.Th>
                <Table.Td>{s.agent_version || '—'}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Gateway</Table.Th>
                <Table.Td>{s.gateway || '—'}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Last heartbeat</Table.Th>
                <Table.Td>{fmtTime(s.last_heartbeat)}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Registered</Table.Th>
                <Table.Td>{fmtTime(s.created_at)}</Table.Td>
              </Table.Tr>
              {Object.entries(s.labels ?? {}).map(([k, v]) => (
                <Table.Tr key={k}>
                  <Table.Th>{k}</Table.Th>
                  <Table.Td>{v}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Stack>
      )}
    </Drawer>
  );
}
