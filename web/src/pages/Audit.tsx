// The audit log: every audited call, oldest first, a page at a time.
// The API filters by organisation and time; actor, action, target,
// channel and request id narrow the entries loaded so far.
import { Anchor, Badge, Button, Code, Group, Loader, Select, SimpleGrid, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { api, errorText, must, type Schemas } from '../api/client';
import { ErrorAlert, fmtTime } from '../components/AdminCommon';
import { useSession } from '../session';

type Entry = Schemas['AuditEntry'];

const PAGE = 100;

/** toRFC3339 turns a datetime-local value into RFC 3339 ('' stays ''). */
export function toRFC3339(local: string): string {
  if (!local) return '';
  const d = new Date(local);
  return isNaN(d.getTime()) ? '' : d.toISOString();
}

interface Query {
  org: string;
  since: string;
}

/** matches says whether e passes the text filters (substrings, case-insensitive). */
export function matches(e: Entry, f: { actor: string; action: string; target: string; channel: string; request: string }): boolean {
  const has = (v: string | undefined, q: string) => !q || (v ?? '').toLowerCase().includes(q.toLowerCase());
  return (
    (has(e.actor, f.actor) || has(e.actor_user, f.actor)) &&
    has(e.action, f.action) &&
    has(e.target, f.target) &&
    (!f.channel || (e.channel || 'api') === f.channel) &&
    has(e.request_id, f.request)
  );
}

export default function Audit() {
  const s = useSession();
  const [form, setForm] = useState({ org: s.org, since: '' });
  const [query, setQuery] = useState<Query>({ org: s.org, since: '' });
  const [items, setItems] = useState<Entry[]>([]);
  const [next, setNext] = useState<number | undefined>();
  const [loading, setLoading] = useState(true);
  const [err, setErr] = useState('');
  const [f, setF] = useState({ actor: '', action: '', target: '', channel: '', request: '' });

  async function load(q: Query, after?: number) {
    setLoading(true);
    setErr('');
    try {
      const d = await must(
        api.GET('/v1/audit', {
          params: { query: { limit: PAGE, ...(q.org ? { org: q.org } : {}), ...(q.since ? { since: q.since } : {}), ...(after ? { after } : {}) } },
        }),
      );
      setItems((old) => (after ? [...old, ...d.items] : d.items));
      setNext(d.next);
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setLoading(false);
    }
  }

  useEffect(() => {
    void load(query);
  }, [query]);

  function apply(e: FormEvent) {
    e.preventDefault();
    setQuery({ org: form.org.trim(), since: toRFC3339(form.since) });
  }

  const shown = useMemo(() => items.filter((e) => matches(e, f)), [items, f]);
  const exportURL = `/v1/audit/export?${new URLSearchParams({ ...(query.org ? { org: query.org } : {}), ...(query.since ? { since: query.since } : {}) })}`;

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Audit log</Title>
        <Anchor href={exportURL} download="audit.jsonl">
          Export (JSON lines)
        </Anchor>
      </Group>
      <form onSubmit={apply} aria-label="Audit query">
        <Group align="flex-end">
          <TextInput
            label="Organisation"
            placeholder={s.platform ? 'all' : ''}
            value={form.org}
            onChange={(e) => setForm({ ...form, org: e.currentTarget.value })}
          />
          <TextInput label="Since" type="datetime-local" value={form.since} onChange={(e) => setForm({ ...form, since: e.currentTarget.value })} />
          <Button type="submit" variant="light">
            Apply
          </Button>
        </Group>
      </form>
      <SimpleGrid cols={{ base: 1, xs: 2, md: 5 }}>
        <TextInput label="Actor" value={f.actor} onChange={(e) => setF({ ...f, actor: e.currentTarget.value })} />
        <TextInput label="Action" placeholder="site.create" value={f.action} onChange={(e) => setF({ ...f, action: e.currentTarget.value })} />
        <TextInput label="Target" value={f.target} onChange={(e) => setF({ ...f, target: e.currentTarget.value })} />
        <Select
          label="Channel"
          data={[
            { value: '', label: 'any' },
            { value: 'portal', label: 'portal' },
            { value: 'cli', label: 'cli' },
            { value: 'assistant', label: 'assistant' },
            { value: 'api', label: 'api' },
          ]}
          value={f.channel}
          onChange={(v) => setF({ ...f, channel: v ?? '' })}
          allowDeselect={false}
        />
        <TextInput label="Request ID" value={f.request} onChange={(e) => setF({ ...f, request: e.currentTarget.value })} />
      </SimpleGrid>
      <ErrorAlert error={err} title="Could not read the audit log" />
      {loading && items.length === 0 ? (
        <Loader aria-label="Loading audit entries" />
      ) : shown.length === 0 && !err ? (
        <Text c="dimmed">{items.length ? 'No loaded entry matches the filters.' : 'No audit entries.'}</Text>
      ) : (
        <Table.ScrollContainer minWidth={900}>
          <Table striped aria-label="Audit entries" fz="sm">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Time</Table.Th>
                <Table.Th>Actor</Table.Th>
                <Table.Th>Action</Table.Th>
                <Table.Th>Target</Table.Th>
                <Table.Th>Outcome</Table.Th>
                <Table.Th>Channel</Table.Th>
                <Table.Th>Request ID</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {shown.map((e) => (
                <Table.Tr key={e.seq} data-testid="audit-row">
                  <Table.Td title={`#${e.seq}`}>{fmtTime(e.time)}</Table.Td>
                  <Table.Td title={e.source_ip}>{e.actor_user || e.actor || 'anonymous'}</Table.Td>
                  <Table.Td>
                    <Code>{e.action}</Code>
                  </Table.Td>
                  <Table.Td title={e.detail}>
                    {e.target}
                    {e.org && e.org !== e.target && (
                      <Text span c="dimmed" size="xs">
                        {' '}
                        ({e.org})
                      </Text>
                    )}
                    {e.detail && (
                      <Text size="xs" c="dimmed">
                        {e.detail}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Badge color={e.outcome === 'success' ? 'green' : 'red'} variant="light">
                      {e.outcome}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    <Badge color={e.channel === 'assistant' ? 'grape' : 'gray'} variant="light">
                      {e.channel || 'api'}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    <Text size="xs" ff="monospace">
                      {e.request_id}
                    </Text>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <Group>
        <Text size="sm" c="dimmed">
          {items.length} entries loaded, oldest first.
        </Text>
        {next !== undefined && (
          <Button variant="default" loading={loading} onClick={() => void load(query, next)}>
            Load more
          </Button>
        )}
      </Group>
    </Stack>
  );
}
