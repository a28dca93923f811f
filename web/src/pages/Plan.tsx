// Plan and usage of the current organisation: quotas as progress bars,
// changing the plan (owners, billing, admins) and the white-label
// branding (owners, admins).
import { Autocomplete, Badge, Button, Group, Loader, Paper, Progress, SimpleGrid, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useEffect, useState, type FormEvent } from 'react';
import { api, errorText, must, type Branding, type Schemas } from '../api/client';
import { ErrorAlert, percent, useLoad } from '../components/AdminCommon';
import { useSession } from '../session';

type OrgView = Schemas['OrgView'];
type Count = Schemas['Count'];
type Bandwidth = Schemas['Bandwidth'];

/** BUILTIN_PLANS are AIPress's shipped plans; an operator may configure others (the API has no plan list). */
const BUILTIN_PLANS = ['dev', 'basic', 'pro', 'business'];

function Meter({ label, used, limit, unit }: { label: string; used: number; limit: number; unit?: string }) {
  const p = percent(used, limit);
  const u = unit ? ` ${unit}` : '';
  const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(2));
  return (
    <Stack gap={4}>
      <Group justify="space-between" gap="xs">
        <Text size="sm" fw={500}>
          {label}
        </Text>
        <Text size="sm" c="dimmed">
          {fmt(used)}
          {u} of {limit ? `${fmt(limit)}${u}` : 'no limit'}
        </Text>
      </Group>
      <Progress value={p} color={p >= 90 ? 'red' : p >= 75 ? 'orange' : undefined} aria-label={label} />
    </Stack>
  );
}

const count = (c?: Count) => ({ used: c?.used ?? 0, limit: c?.limit ?? 0 });
const bw = (b?: Bandwidth) => ({ used: b?.used_gb ?? 0, limit: b?.limit_gb ?? 0 });

export default function Plan() {
  const s = useSession();
  const org = s.org;
  const role = s.orgs[org];
  const admin = s.me?.platform_role === 'admin';
  const view = useLoad(() => (org ? must(api.GET('/v1/orgs/{org}', { params: { path: { org } } })) : Promise.resolve(undefined)), [org]);
  const o = view.data;
  const q = o?.quotas;

  return (
    <Stack>
      <Title order={2}>Plan and usage</Title>
      {!org && <Text c="dimmed">Choose an organisation to see its plan.</Text>}
      <ErrorAlert error={view.error} />
      {org && view.loading && !o && <Loader aria-label="Loading plan" />}
      {o && (
        <>
          <Paper withBorder p="md">
            <Stack>
              <Group justify="space-between">
                <Text size="lg" fw={600} component="div">
                  {o.display_name || o.name}: plan <Badge size="lg">{q?.plan || o.plan || 'none'}</Badge>
                </Text>
                {o.suspended && <Badge color="red">suspended</Badge>}
              </Group>
              <SimpleGrid cols={{ base: 1, sm: 2 }}>
                <Meter label="Sites" {...count(q?.sites)} />
                <Meter label={`Bandwidth ${q?.bandwidth?.month ?? 'this month'}`} {...bw(q?.bandwidth)} unit="GB" />
              </SimpleGrid>
            </Stack>
          </Paper>
          {q?.per_site && q.per_site.length > 0 && (
            <>
              <Title order={3}>Per site</Title>
              <Table.ScrollContainer minWidth={600}>
                <Table aria-label="Usage per site">
                  <Table.Thead>
                    <Table.Tr>
                      <Table.Th>Site</Table.Th>
                      <Table.Th>Plan</Table.Th>
                      <Table.Th w="30%">Disk</Table.Th>
                      <Table.Th w="30%">Bandwidth</Table.Th>
                    </Table.Tr>
                  </Table.Thead>
                  <Table.Tbody>
                    {q.per_site.map((p) => (
                      <Table.Tr key={p.site}>
                        <Table.Td>{p.site}</Table.Td>
                        <Table.Td>{p.plan}</Table.Td>
                        <Table.Td>
                          <Meter label={`Disk of ${p.site}`} {...count(p.disk_mb)} unit="MB" />
                        </Table.Td>
                        <Table.Td>
                          <Meter label={`Bandwidth of ${p.site}`} {...bw(p.bandwidth)} unit="GB" />
                        </Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              </Table.ScrollContainer>
            </>
          )}
          {(role === 'owner' || role === 'billing' || admin) && <ChangePlan org={o} onChanged={view.reload} />}
          {(role === 'owner' || admin) && (
            <BrandingEditor
              org={o}
              onSaved={async () => {
                await view.reload();
                await s.refresh();
              }}
            />
          )}
        </>
      )}
    </Stack>
  );
}

function ChangePlan({ org, onChanged }: { org: OrgView; onChanged(): Promise<void> }) {
  const [plan, setPlan] = useState(org.plan);
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const [done, setDone] = useState('');
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setErr('');
    setDone('');
    try {
      await must(api.PATCH('/v1/orgs/{org}', { params: { path: { org: org.name } }, body: { plan: plan.trim() } }));
      setDone(`The plan is now ${plan.trim()}.`);
      await onChanged();
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <Paper withBorder p="md" component="section" aria-label="Change plan">
      <form onSubmit={submit}>
        <Stack>
          <Title order={3}>Change plan</Title>
          <ErrorAlert error={err} title="Could not change the plan" />
          {done && (
            <Text role="status" c="green">
              {done}
            </Text>
          )}
          <Group align="flex-end">
            <Autocomplete label="Plan" data={BUILTIN_PLANS} value={plan} onChange={setPlan} required />
            <Button type="submit" loading={busy} disabled={!plan.trim() || plan.trim() === org.plan}>
              Change plan
            </Button>
          </Group>
        </Stack>
      </form>
    </Paper>
  );
}

const HEX = /^#[0-9a-fA-F]{6}$/;

/** ColourField is a #rrggbb text field with the browser's colour picker beside it (lighter than Mantine's ColorInput). */
function ColourField({ label, value, onChange }: { label: string; value: string; onChange(v: string): void }) {
  return (
    <TextInput
      label={label}
      placeholder="#rrggbb"
      value={value}
      onChange={(e) => onChange(e.currentTarget.value.trim())}
      error={value && !HEX.test(value) ? 'A colour of the form #rrggbb' : undefined}
      rightSectionWidth={44}
      rightSection={
        <input
          type="color"
          aria-label={`Pick ${label.toLowerCase()}`}
          value={HEX.test(value) ? value.toLowerCase() : '#000000'}
          onChange={(e) => onChange(e.currentTarget.value)}
          style={{ width: 28, height: 24, padding: 0, border: 0, background: 'none', cursor: 'pointer' }}
        />
      }
    />
  );
}

function BrandingEditor({ org, onSaved }: { org: OrgView; onSaved(): Promise<void> }) {
  const [b, setB] = useState<Branding>(org.branding ?? {});
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const [done, setDone] = useState(false);
  useEffect(() => setB(org.branding ?? {}), [org.branding]);
  const set = (k: keyof Branding) => (v: string) => setB((old) => ({ ...old, [k]: v }));
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setErr('');
    setDone(false);
    try {
      // Empty fields are sent empty: that clears them.
      const body: Branding = {
        product_name: b.product_name ?? '',
        logo_url: b.logo_url ?? '',
        primary_color: b.primary_color ?? '',
        accent_color: b.accent_color ?? '',
        support_email: b.support_email ?? '',
      };
      await must(api.PATCH('/v1/orgs/{org}', { params: { path: { org: org.name } }, body: { branding: body } }));
      setDone(true);
      await onSaved();
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <Paper withBorder p="md" component="section" aria-label="Branding">
      <form onSubmit={submit}>
        <Stack>
          <Title order={3}>Branding</Title>
          <Text size="sm" c="dimmed">
            What this organisation's users see in the portal: product name, logo and colours.
          </Text>
          <ErrorAlert error={err} title="Could not save the branding" />
          {done && (
            <Text role="status" c="green">
              Branding saved.
            </Text>
          )}
          <SimpleGrid cols={{ base: 1, sm: 2 }}>
            <TextInput label="Product name" maxLength={100} value={b.product_name ?? ''} onChange={(e) => set('product_name')(e.currentTarget.value)} />
            <TextInput label="Logo URL" type="url" placeholder="https://…" value={b.logo_url ?? ''} onChange={(e) => set('logo_url')(e.currentTarget.value)} />
            <ColourField label="Primary colour" value={b.primary_color ?? ''} onChange={set('primary_color')} />
            <ColourField label="Accent colour" value={b.accent_color ?? ''} onChange={set('accent_color')} />
            <TextInput label="Support e-mail" type="email" value={b.support_email ?? ''} onChange={(e) => set('support_email')(e.currentTarget.value)} />
          </SimpleGrid>
          <Group justify="flex-end">
            <Button type="submit" loading={busy}>
              Save branding
            </Button>
          </Group>
        </Stack>
      </form>
    </Paper>
  );
}
