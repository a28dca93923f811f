// The site page's Overview and Domains tabs.
import { Anchor, Badge, Button, Group, Paper, SimpleGrid, Stack, Switch, Table, Text, Title } from '@mantine/core';
import { useState, type ReactNode } from 'react';
import { api, errorText, must, type Site } from '../api/client';
import { httpURL } from '../urls';
import { ErrorAlert, fmtTime, siteOrg, type SitePerms } from './SiteShared';

/** SiteLink links a site's URL when it is http(s); anything else is plain text. */
function SiteLink({ url, empty = '' }: { url?: string; empty?: string }) {
  const href = httpURL(url);
  if (!url) return <>{empty}</>;
  return href ? (
    <Anchor href={href} target="_blank" rel="noreferrer">
      {url}
    </Anchor>
  ) : (
    <>{url}</>
  );
}

function Field({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div>
      <Text size="xs" c="dimmed" tt="uppercase" fw={600}>
        {label}
      </Text>
      <Text size="sm" style={{ overflowWrap: 'anywhere' }}>
        {children === undefined || children === null || children === '' ? '—' : children}
      </Text>
    </div>
  );
}

/** Conditions lists a site's conditions with their reasons and messages. */
export function Conditions({ site, onlyFalse }: { site: Site; onlyFalse?: boolean }) {
  const cs = (site.status.conditions ?? []).filter((c) => !onlyFalse || c.status !== 'True');
  if (cs.length === 0) return null;
  return (
    <Table.ScrollContainer minWidth={420}>
      <Table aria-label="Conditions" striped>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Condition</Table.Th>
            <Table.Th>Status</Table.Th>
            <Table.Th>Message</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {cs.map((c) => (
            <Table.Tr key={c.type}>
              <Table.Td>{c.type}</Table.Td>
              <Table.Td>
                <Badge variant="light" color={c.status === 'True' ? 'green' : c.status === 'False' ? 'red' : 'gray'}>
                  {c.status}
                </Badge>
              </Table.Td>
              <Table.Td>{[c.reason, c.message].filter(Boolean).join(': ')}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

export function SiteOverview({ site }: { site: Site }) {
  const php = site.spec.php ?? {};
  const lim = site.spec.limits ?? {};
  const url = site.status.url;
  return (
    <Stack>
      <SimpleGrid cols={{ base: 1, xs: 2, md: 3 }}>
        <Field label="URL">
          <SiteLink url={url} />
        </Field>
        <Field label="Title">{site.spec.title}</Field>
        <Field label="Organisation">{siteOrg(site)}</Field>
        <Field label="Shard">{site.status.shard}</Field>
        <Field label="Plan">{site.spec.plan}</Field>
        <Field label="Created">{fmtTime(site.metadata.created_at)}</Field>
        <Field label="Admin user">{site.spec.admin ? `${site.spec.admin.user ?? ''}${site.spec.admin.email ? ` <${site.spec.admin.email}>` : ''}` : ''}</Field>
        <Field label="WordPress core">{site.spec.core_version || 'shard default'}</Field>
        <Field label="Suspended">{site.spec.suspended ? `yes (by ${site.spec.suspended_by ?? 'org'})` : 'no'}</Field>
      </SimpleGrid>
      <Title order={3} size="h4">
        PHP and limits
      </Title>
      <SimpleGrid cols={{ base: 2, md: 4 }}>
        <Field label="PHP workers">{php.max_children}</Field>
        <Field label="Memory limit">{php.memory_limit_mb !== undefined ? `${php.memory_limit_mb} MiB` : ''}</Field>
        <Field label="Upload limit">{php.upload_max_mb !== undefined ? `${php.upload_max_mb} MiB` : ''}</Field>
        <Field label="Request timeout">{php.request_timeout_seconds !== undefined ? `${php.request_timeout_seconds} s` : ''}</Field>
        <Field label="Disk">{lim.disk_mb !== undefined ? `${site.status.disk_used_mb ? `${site.status.disk_used_mb} of ` : ''}${lim.disk_mb} MiB` : ''}</Field>
        <Field label="Database connections">{lim.db_connections}</Field>
        <Field label="Database clients">{lim.db_clients}</Field>
        <Field label="Generation">{`${site.metadata.generation}${site.status.observed_generation !== undefined ? ` (applied ${site.status.observed_generation})` : ''}`}</Field>
      </SimpleGrid>
      <Conditions site={site} />
    </Stack>
  );
}

/** SiteDomains: the domain, its URL and HTTPS, and the HTTP→HTTPS redirect. */
export function SiteDomains({ site, perms, onChange }: { site: Site; perms: SitePerms; onChange(s: Site): void }) {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const [redirect, setRedirect] = useState(!!site.spec.https_redirect);
  const https = (site.status.url ?? '').startsWith('https:');
  const dirty = redirect !== !!site.spec.https_redirect;

  async function save() {
    setBusy(true);
    setErr('');
    try {
      onChange(await must(api.PATCH('/v1/sites/{name}', { params: { path: { name: site.metadata.name } }, body: { https_redirect: redirect } })));
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Stack maw={640}>
      <ErrorAlert error={err} />
      <Paper withBorder p="md">
        <Stack gap="xs">
          <Group justify="space-between">
            <Text fw={600}>{site.spec.domain ?? site.metadata.name}</Text>
            <Badge color={https ? 'green' : 'gray'} variant="light">
              {https ? 'HTTPS' : 'HTTP only'}
            </Badge>
          </Group>
          <Text size="sm">
            URL: <SiteLink url={site.status.url} empty="—" />
          </Text>
          <Text size="sm" c="dimmed">
            The domain is the site's name and cannot change; clone a backup to a new domain to move it.
          </Text>
        </Stack>
      </Paper>
      <Switch
        label="Redirect HTTP to HTTPS"
        description="Plain-HTTP visitors get a 308 to HTTPS when the edge serves HTTPS."
        checked={redirect}
        disabled={!perms.write}
        onChange={(e) => setRedirect(e.currentTarget.checked)}
      />
      {perms.write && (
        <Group>
          <Button onClick={save} loading={busy} disabled={!dirty}>
            Save HTTPS settings
          </Button>
        </Group>
      )}
    </Stack>
  );
}
