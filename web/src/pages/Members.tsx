// Members of the current organisation: roles, removal, invitations; and,
// for platform staff, every user of the platform.
import { Badge, Button, Group, Loader, Modal, Select, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { api, errorText, must, type Schemas } from '../api/client';
import { ConfirmDialog, ErrorAlert, fmtTime, ROLES, useLoad } from '../components/AdminCommon';
import { useSession } from '../session';

type Member = Schemas['MemberList']['items'][number];
type Invite = Schemas['Invite'];

export default function Members() {
  const s = useSession();
  const org = s.org;
  const admin = s.me?.platform_role === 'admin';
  const owner = s.orgs[org] === 'owner' || admin;
  return (
    <Stack>
      <Title order={2}>Members</Title>
      {org ? <OrgMembers org={org} owner={owner} self={s.me?.user?.id ?? ''} /> : <Text c="dimmed">Choose an organisation to see its members.</Text>}
      {s.platform && <Users admin={admin} self={s.me?.user?.id ?? ''} />}
    </Stack>
  );
}

function OrgMembers({ org, owner, self }: { org: string; owner: boolean; self: string }) {
  const members = useLoad(() => must(api.GET('/v1/orgs/{org}/members', { params: { path: { org } } })).then((d) => d.items), [org]);
  const invites = useLoad(
    () => (owner ? must(api.GET('/v1/orgs/{org}/invites', { params: { path: { org } } })).then((d) => d.items) : Promise.resolve([] as Invite[])),
    [org, owner],
  );
  const [err, setErr] = useState('');
  const [removing, setRemoving] = useState<Member | null>(null);
  const [revoking, setRevoking] = useState<Invite | null>(null);
  const [inviting, setInviting] = useState(false);
  const [sent, setSent] = useState('');

  async function setRole(m: Member, role: string) {
    setErr('');
    try {
      await must(api.PUT('/v1/orgs/{org}/members/{user}', { params: { path: { org, user: m.user_id } }, body: { role: role as Member['role'] } }));
      await members.reload();
    } catch (e) {
      setErr(errorText(e));
    }
  }

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={3}>Members of {org}</Title>
        {owner && <Button onClick={() => setInviting(true)}>Invite</Button>}
      </Group>
      {sent && (
        <Text role="status" c="green">
          Invitation sent to {sent}.
        </Text>
      )}
      <ErrorAlert error={members.error || err} />
      {members.loading && !members.data ? (
        <Loader aria-label="Loading members" />
      ) : members.data && members.data.length === 0 ? (
        <Text c="dimmed">No members.</Text>
      ) : (
        <Table.ScrollContainer minWidth={560}>
          <Table striped aria-label="Members">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>E-mail</Table.Th>
                <Table.Th>Role</Table.Th>
                <Table.Th>Member since</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {members.data?.map((m) => (
                <Table.Tr key={m.user_id}>
                  <Table.Td>{m.name || m.user_id}</Table.Td>
                  <Table.Td>{m.email}</Table.Td>
                  <Table.Td>
                    {owner ? (
                      <Select
                        aria-label={`Access level of ${m.email || m.user_id}`}
                        data={[...ROLES]}
                        value={m.role}
                        allowDeselect={false}
                        onChange={(v) => v && v !== m.role && void setRole(m, v)}
                        w={140}
                        size="xs"
                      />
                    ) : (
                      <Badge variant="light">{m.role}</Badge>
                    )}
                  </Table.Td>
                  <Table.Td>{fmtTime(m.created_at)}</Table.Td>
                  <Table.Td>
                    {(owner || m.user_id === self) && (
                      <Button size="xs" variant="subtle" color="red" onClick={() => setRemoving(m)}>
                        {m.user_id === self ? 'Leave' : 'Remove'}
                      </Button>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}

      {owner && (
        <>
          <Title order={3}>Invitations</Title>
          <ErrorAlert error={invites.error} />
          {invites.loading && !invites.data ? (
            <Loader aria-label="Loading invitations" />
          ) : invites.data && invites.data.length === 0 ? (
            <Text c="dimmed">No invitations.</Text>
          ) : (
            <Table.ScrollContainer minWidth={560}>
              <Table striped aria-label="Invitations">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>E-mail</Table.Th>
                    <Table.Th>Role</Table.Th>
                    <Table.Th>State</Table.Th>
                    <Table.Th>Expires</Table.Th>
                    <Table.Th />
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {invites.data?.map((i) => (
                    <Table.Tr key={i.id}>
                      <Table.Td>{i.email}</Table.Td>
                      <Table.Td>{i.role}</Table.Td>
                      <Table.Td>
                        <Badge variant="light" color={i.state === 'pending' ? 'blue' : i.state === 'accepted' ? 'green' : 'gray'}>
                          {i.state}
                        </Badge>
                      </Table.Td>
                      <Table.Td>{fmtTime(i.expires_at)}</Table.Td>
                      <Table.Td>
                        {i.state === 'pending' && (
                          <Button size="xs" variant="subtle" color="red" onClick={() => setRevoking(i)}>
                            Revoke
                          </Button>
                        )}
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          )}
        </>
      )}

      <InviteDialog
        org={org}
        opened={inviting}
        onClose={() => setInviting(false)}
        onSent={async (email) => {
          setSent(email);
          setInviting(false);
          await invites.reload();
        }}
      />
      <ConfirmDialog
        opened={!!removing}
        title={removing?.user_id === self ? `Leave ${org}` : 'Remove member'}
        confirm={removing?.user_id === self ? 'Leave' : 'Remove'}
        onClose={() => setRemoving(null)}
        onConfirm={async () => {
          if (!removing) return;
          await must(api.DELETE('/v1/orgs/{org}/members/{user}', { params: { path: { org, user: removing.user_id } } }));
          await members.reload();
        }}
      >
        {removing?.user_id === self
          ? `You will lose access to ${org} and its sites.`
          : `${removing?.email || removing?.user_id} will lose access to ${org}; their tokens for it stop working.`}
      </ConfirmDialog>
      <ConfirmDialog
        opened={!!revoking}
        title="Revoke invitation"
        confirm="Revoke"
        onClose={() => setRevoking(null)}
        onConfirm={async () => {
          if (!revoking) return;
          await must(api.DELETE('/v1/orgs/{org}/invites/{id}', { params: { path: { org, id: revoking.id } } }));
          await invites.reload();
        }}
      >
        The link sent to {revoking?.email} will stop working.
      </ConfirmDialog>
    </Stack>
  );
}

function InviteDialog(props: { org: string; opened: boolean; onClose(): void; onSent(email: string): Promise<void> }) {
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<string>('developer');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setErr('');
    try {
      const r = await must(
        api.POST('/v1/orgs/{org}/invites', { params: { path: { org: props.org } }, body: { email, role: role as Invite['role'] } }),
      );
      setEmail('');
      await props.onSent(r.sent_to || email);
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <Modal opened={props.opened} onClose={props.onClose} title={`Invite to ${props.org}`} centered>
      <form onSubmit={submit}>
        <Stack>
          <ErrorAlert error={err} title="Could not invite" />
          <TextInput label="E-mail" type="email" required value={email} onChange={(e) => setEmail(e.currentTarget.value)} data-autofocus />
          <Select label="Role" data={[...ROLES]} value={role} onChange={(v) => setRole(v ?? 'developer')} allowDeselect={false} />
          <Text size="sm" c="dimmed">
            The invitation link is mailed to the address only; it works once, for 7 days.
          </Text>
          <Group justify="flex-end">
            <Button type="submit" loading={busy}>
              Send invitation
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

type User = Schemas['User'];

/** Users lists every user of the platform (platform staff), a page at a time; admins disable and enable them. */
function Users({ admin, self }: { admin: boolean; self: string }) {
  const [toggling, setToggling] = useState<User | null>(null);
  const [pages, setPages] = useState<string[]>(['']);
  const cont = pages[pages.length - 1];
  const users = useLoad(() => must(api.GET('/v1/users', { params: { query: { limit: 50, ...(cont ? { continue: cont } : {}) } } })), [cont]);
  return (
    <Stack>
      <Title order={3}>Users</Title>
      <ErrorAlert error={users.error} />
      {users.loading && !users.data ? (
        <Loader aria-label="Loading users" />
      ) : users.data && users.data.items.length === 0 ? (
        <Text c="dimmed">No users.</Text>
      ) : (
        <Table.ScrollContainer minWidth={560}>
          <Table striped aria-label="Users">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>E-mail</Table.Th>
                <Table.Th>Name</Table.Th>
                <Table.Th>Platform role</Table.Th>
                <Table.Th>State</Table.Th>
                <Table.Th>Last sign-in</Table.Th>
                {admin && <Table.Th />}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {users.data?.items.map((u) => (
                <Table.Tr key={u.id}>
                  <Table.Td>{u.email}</Table.Td>
                  <Table.Td>{u.name}</Table.Td>
                  <Table.Td>{u.platform_role || '—'}</Table.Td>
                  <Table.Td>
                    {u.disabled ? <Badge color="red">disabled</Badge> : u.locked_until && new Date(u.locked_until) > new Date() ? <Badge color="orange">locked</Badge> : <Badge color="green" variant="light">active</Badge>}
                  </Table.Td>
                  <Table.Td>{fmtTime(u.last_login_at)}</Table.Td>
                  {admin && (
                    <Table.Td>
                      {u.id !== self && (
                        <Button size="xs" variant="subtle" color={u.disabled ? 'blue' : 'red'} onClick={() => setToggling(u)}>
                          {u.disabled ? 'Enable' : 'Disable'}
                        </Button>
                      )}
                    </Table.Td>
                  )}
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
        <Button variant="default" disabled={!users.data?.continue} onClick={() => users.data?.continue && setPages((p) => [...p, users.data!.continue!])}>
          Next page
        </Button>
      </Group>
      <ConfirmDialog
        opened={!!toggling}
        title={`${toggling?.disabled ? 'Enable' : 'Disable'} ${toggling?.email ?? ''}`}
        confirm={toggling?.disabled ? 'Enable' : 'Disable'}
        color={toggling?.disabled ? 'blue' : 'red'}
        onClose={() => setToggling(null)}
        onConfirm={async () => {
          if (!toggling) return;
          await must(api.PATCH('/v1/users/{id}', { params: { path: { id: toggling.id } }, body: { disabled: !toggling.disabled } }));
          await users.reload();
        }}
      >
        {toggling?.disabled
          ? 'The user can sign in again.'
          : 'Their sessions and tokens stop working at once, and they cannot sign in until enabled again.'}
      </ConfirmDialog>
    </Stack>
  );
}
