// API tokens: the caller's own (and its organisations' for owners; all for
// admins), creation with the secret shown once, rotation and revocation.
import { Badge, Button, Code, CopyButton, Group, Loader, Modal, Select, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { api, errorText, must, type Schemas } from '../api/client';
import { ago, ConfirmDialog, ErrorAlert, fmtTime, ROLES, useLoad } from '../components/AdminCommon';
import { useSession } from '../session';

type Token = Schemas['Token'];
type Created = Schemas['CreateTokenResponse'];

const EXPIRIES = [
  { value: '0', label: 'Never' },
  { value: String(7 * 86400), label: '7 days' },
  { value: String(30 * 86400), label: '30 days' },
  { value: String(90 * 86400), label: '90 days' },
  { value: String(365 * 86400), label: '1 year' },
];

const OVERLAPS = [
  { value: '-1', label: 'End the old secret now' },
  { value: '3600', label: '1 hour' },
  { value: '86400', label: '24 hours' },
  { value: String(7 * 86400), label: '7 days' },
];

export default function Tokens() {
  const tokens = useLoad(() => must(api.GET('/v1/tokens')).then((d) => d.items), []);
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<Created | null>(null);
  const [rotating, setRotating] = useState<Token | null>(null);
  const [revoking, setRevoking] = useState<Token | null>(null);
  const [overlap, setOverlap] = useState('86400');

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>API tokens</Title>
        <Button onClick={() => setCreating(true)}>Create token</Button>
      </Group>
      <Text size="sm" c="dimmed">
        Tokens let programs and the CLI call the API. A token never does more than its creator may; an organisation token
        at most the creator's role there.
      </Text>
      <ErrorAlert error={tokens.error} />
      {tokens.loading && !tokens.data ? (
        <Loader aria-label="Loading tokens" />
      ) : tokens.data && tokens.data.length === 0 ? (
        <Text c="dimmed">No tokens yet.</Text>
      ) : (
        <Table.ScrollContainer minWidth={700}>
          <Table striped aria-label="Tokens">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Prefix</Table.Th>
                <Table.Th>Scope</Table.Th>
                <Table.Th>Role</Table.Th>
                <Table.Th>Expires</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {tokens.data?.map((t) => (
                <Table.Tr key={t.id}>
                  <Table.Td>
                    {t.name} {t.kind === 'session' && <Badge variant="light" size="xs">session</Badge>}
                    {t.replaced_by && (
                      <Badge variant="light" color="orange" size="xs">
                        rotated
                      </Badge>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Code>{t.prefix ?? t.id}</Code>
                  </Table.Td>
                  <Table.Td>{t.org ? `organisation ${t.org}` : 'platform'}</Table.Td>
                  <Table.Td>{t.role}</Table.Td>
                  <Table.Td>{t.expires_at ? fmtTime(t.expires_at) : 'never'}</Table.Td>
                  <Table.Td title={t.last_used_ip}>{ago(t.last_used_at)}</Table.Td>
                  <Table.Td>
                    <Group gap="xs" wrap="nowrap">
                      {t.kind !== 'session' && !t.replaced_by && (
                        <Button size="xs" variant="subtle" onClick={() => setRotating(t)}>
                          Rotate
                        </Button>
                      )}
                      <Button size="xs" variant="subtle" color="red" onClick={() => setRevoking(t)}>
                        Revoke
                      </Button>
                    </Group>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}

      <CreateDialog
        opened={creating}
        onClose={() => setCreating(false)}
        onCreated={async (c) => {
          setCreating(false);
          setSecret(c);
          await tokens.reload();
        }}
      />
      <SecretDialog created={secret} onClose={() => setSecret(null)} />
      <ConfirmDialog
        opened={!!rotating}
        title={`Rotate ${rotating?.name ?? ''}`}
        confirm="Rotate"
        color="blue"
        onClose={() => setRotating(null)}
        onConfirm={async () => {
          if (!rotating) return;
          const c = await must(
            api.POST('/v1/tokens/{id}/rotate', { params: { path: { id: rotating.id } }, body: { overlap_seconds: Number(overlap) } }),
          );
          setSecret(c);
          await tokens.reload();
        }}
      >
        <Stack>
          <Text>A new secret replaces this token's; the old one keeps working for the overlap, so programs can move over.</Text>
          <Select label="Old secret keeps working for" data={OVERLAPS} value={overlap} onChange={(v) => setOverlap(v ?? '86400')} allowDeselect={false} />
        </Stack>
      </ConfirmDialog>
      <ConfirmDialog
        opened={!!revoking}
        title={`Revoke ${revoking?.name ?? ''}`}
        confirm="Revoke"
        onClose={() => setRevoking(null)}
        onConfirm={async () => {
          if (!revoking) return;
          await must(api.DELETE('/v1/tokens/{id}', { params: { path: { id: revoking.id } } }));
          await tokens.reload();
        }}
      >
        Programs using {revoking?.prefix ?? revoking?.id} stop working at once.
      </ConfirmDialog>
    </Stack>
  );
}

function CreateDialog(props: { opened: boolean; onClose(): void; onCreated(c: Created): Promise<void> }) {
  const s = useSession();
  const orgNames = Object.keys(s.orgs).sort();
  const pr = s.me?.platform_role ?? '';
  // Scope: one of the user's organisations, or the platform (the user's own rights).
  const scopes = [...orgNames.map((o) => ({ value: `org:${o}`, label: `Organisation ${o}` })), { value: 'platform', label: 'Platform (all my rights)' }];
  const [name, setName] = useState('');
  const [scope, setScope] = useState(s.org && orgNames.includes(s.org) ? `org:${s.org}` : scopes[0].value);
  const [role, setRole] = useState('');
  const [expiry, setExpiry] = useState(String(90 * 86400));
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const org = scope.startsWith('org:') ? scope.slice(4) : '';
  const myRole = org ? s.orgs[org] : '';
  // An organisation token's role is at most the creator's there.
  const roleChoices = org
    ? myRole === 'owner'
      ? [...ROLES]
      : myRole === 'developer'
        ? ['developer', 'viewer']
        : [myRole]
    : ['user', ...(pr ? [pr] : [])];
  const chosen = roleChoices.includes(role) ? role : roleChoices[org && myRole === 'owner' ? 1 : 0];

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setErr('');
    try {
      const exp = Number(expiry);
      const c = await must(
        api.POST('/v1/tokens', { body: { name, role: chosen, ...(org ? { org } : {}), ...(exp > 0 ? { expires_in_seconds: exp } : {}) } }),
      );
      setName('');
      await props.onCreated(c);
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <Modal opened={props.opened} onClose={props.onClose} title="Create token" centered>
      <form onSubmit={submit}>
        <Stack>
          <ErrorAlert error={err} title="Could not create the token" />
          <TextInput label="Name" required maxLength={100} value={name} onChange={(e) => setName(e.currentTarget.value)} data-autofocus />
          <Select label="Scope" data={scopes} value={scope} onChange={(v) => v && setScope(v)} allowDeselect={false} />
          <Select label="Role" data={roleChoices} value={chosen} onChange={(v) => v && setRole(v)} allowDeselect={false} />
          <Select label="Expires" data={EXPIRIES} value={expiry} onChange={(v) => v && setExpiry(v)} allowDeselect={false} />
          <Group justify="flex-end">
            <Button type="submit" loading={busy}>
              Create token
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/** SecretDialog shows a new token's secret, once. */
function SecretDialog({ created, onClose }: { created: Created | null; onClose(): void }) {
  return (
    <Modal opened={!!created} onClose={onClose} title={`Token ${created?.name ?? ''}`} centered closeOnClickOutside={false}>
      <Stack>
        <Text fw={600}>Copy the secret now: this is the only time it is shown. Store it where your program reads it.</Text>
        <Code block data-testid="token-secret" style={{ wordBreak: 'break-all' }}>
          {created?.token}
        </Code>
        <Group justify="flex-end">
          <CopyButton value={created?.token ?? ''}>
            {({ copied, copy }) => (
              <Button variant="light" onClick={copy}>
                {copied ? 'Copied' : 'Copy secret'}
              </Button>
            )}
          </CopyButton>
          <Button onClick={onClose}>Done</Button>
        </Group>
      </Stack>
    </Modal>
  );
}
