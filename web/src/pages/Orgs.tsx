// Organisations (platform staff): every organisation a page at a time,
// with its kind, partner, plan, state and sites used; admins create them.
import { Badge, Button, Group, Loader, Modal, Select, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useMemo, useState, type FormEvent } from 'react';
import { api, errorText, must, type Org } from '../api/client';
import { ErrorAlert, useLoad } from '../components/AdminCommon';
import { useSession } from '../session';

const PAGE = 50;

/** orgMatches says whether an organisation's name, display name, partner or plan contains q. */
export function orgMatches(o: Org, q: string): boolean {
  const t = q.trim().toLowerCase();
  if (!t) return true;
  return [o.name, o.display_name, o.partner, o.plan].some((v) => (v ?? '').toLowerCase().includes(t));
}

/** SitesUsed reads one organisation's quota (its sites used of the plan's limit). */
function SitesUsed({ org }: { org: string }) {
  const v = useLoad(() => must(api.GET('/v1/orgs/{org}', { params: { path: { org } } })), [org]);
  if (v.error) return <Text c="red" size="sm" title={v.error}>?</Text>;
  if (!v.data) return <Loader size="xs" aria-label={`Loading sites of ${org}`} />;
  const s = v.data.quotas?.sites;
  return (
    <Text size="sm" data-testid={`sites-${org}`}>
      {s?.used ?? 0}
      {s?.limit ? ` / ${s.limit}` : ''}
    </Text>
  );
}

export default function Orgs() {
  const s = useSession();
  const admin = s.me?.platform_role === 'admin';
  const [partner, setPartner] = useState('');
  const [pages, setPages] = useState<string[]>(['']);
  const cont = pages[pages.length - 1];
  const list = useLoad(
    () => must(api.GET('/v1/orgs', { params: { query: { limit: PAGE, ...(cont ? { continue: cont } : {}), ...(partner ? { partner } : {}) } } })),
    [cont, partner],
  );
  const [q, setQ] = useState('');
  const [creating, setCreating] = useState(false);
  const shown = useMemo(() => (list.data?.items ?? []).filter((o) => orgMatches(o, q)), [list.data, q]);

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Organisations</Title>
        {admin && <Button onClick={() => setCreating(true)}>Create organisation</Button>}
      </Group>
      <Group align="flex-end">
        <TextInput label="Search organisations" placeholder="name, partner or plan" value={q} onChange={(e) => setQ(e.currentTarget.value)} />
        <TextInput
          label="Partner"
          placeholder="any"
          value={partner}
          onChange={(e) => {
            setPartner(e.currentTarget.value.trim());
            setPages(['']);
          }}
        />
      </Group>
      <ErrorAlert error={list.error} />
      {list.loading && !list.data ? (
        <Loader aria-label="Loading organisations" />
      ) : shown.length === 0 ? (
        <Text c="dimmed">{list.data?.items.length ? 'No organisation on this page matches.' : 'No organisations.'}</Text>
      ) : (
        <Table.ScrollContainer minWidth={700}>
          <Table striped aria-label="Organisations">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Kind</Table.Th>
                <Table.Th>Partner</Table.Th>
                <Table.Th>Plan</Table.Th>
                <Table.Th>State</Table.Th>
                <Table.Th>Sites</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {shown.map((o) => (
                <Table.Tr key={o.name} data-testid="org-row">
                  <Table.Td>
                    <Text size="sm" fw={500}>
                      {o.name}
                    </Text>
                    {o.display_name && (
                      <Text size="xs" c="dimmed">
                        {o.display_name}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Badge variant="light" color={o.kind === 'partner' ? 'grape' : 'gray'}>
                      {o.kind}
                    </Badge>
                  </Table.Td>
                  <Table.Td>{o.partner || '—'}</Table.Td>
                  <Table.Td>{o.plan || '—'}</Table.Td>
                  <Table.Td>{o.suspended ? <Badge color="red">suspended</Badge> : <Badge color="green" variant="light">active</Badge>}</Table.Td>
                  <Table.Td>
                    <SitesUsed org={o.name} />
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <Group>
        <Button variant="default" disabled={pages.length < 2} onClick={() => setPages((p) => p.slice(0, -1))}>
          Previous page
        </Button>
        <Button variant="default" disabled={!list.data?.continue} onClick={() => list.data?.continue && setPages((p) => [...p, list.data!.continue!])}>
          Next page
        </Button>
      </Group>
      <CreateOrg
        opened={creating}
        onClose={() => setCreating(false)}
        onCreated={async () => {
          setCreating(false);
          await list.reload();
        }}
      />
    </Stack>
  );
}

function CreateOrg(props: { opened: boolean; onClose(): void; onCreated(): Promise<void> }) {
  const [f, setF] = useState({ name: '', display_name: '', kind: 'customer', partner: '', plan: 'basic' });
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setErr('');
    try {
      await must(
        api.POST('/v1/orgs', {
          body: {
            name: f.name.trim(),
            kind: f.kind as Org['kind'],
            plan: f.plan.trim(),
            ...(f.display_name.trim() ? { display_name: f.display_name.trim() } : {}),
            ...(f.partner.trim() ? { partner: f.partner.trim() } : {}),
          },
        }),
      );
      setF({ name: '', display_name: '', kind: 'customer', partner: '', plan: 'basic' });
      await props.onCreated();
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <Modal opened={props.opened} onClose={props.onClose} title="Create organisation" centered>
      <form onSubmit={submit}>
        <Stack>
          <ErrorAlert error={err} title="Could not create the organisation" />
          <TextInput
            label="Name"
            description="Lowercase letters, digits and '-', starting with a letter; cannot change."
            required
            value={f.name}
            onChange={(e) => setF({ ...f, name: e.currentTarget.value })}
            data-autofocus
          />
          <TextInput label="Display name" value={f.display_name} onChange={(e) => setF({ ...f, display_name: e.currentTarget.value })} />
          <Select label="Kind" data={['customer', 'partner']} value={f.kind} onChange={(v) => v && setF({ ...f, kind: v })} allowDeselect={false} />
          {f.kind === 'customer' && (
            <TextInput label="Partner" placeholder="none" value={f.partner} onChange={(e) => setF({ ...f, partner: e.currentTarget.value })} />
          )}
          <TextInput label="Plan" value={f.plan} onChange={(e) => setF({ ...f, plan: e.currentTarget.value })} />
          <Group justify="flex-end">
            <Button type="submit" loading={busy}>
              Create organisation
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
