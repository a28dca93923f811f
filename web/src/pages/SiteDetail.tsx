// The site page (/sites/:name and /sites/:name/:tab): live status, the
// site's actions (wp-admin sign-in, suspend/resume, delete) and its tabs.
import { Alert, Anchor, Badge, Button, Center, Code, CopyButton, Group, Loader, Stack, Tabs, Text, Title } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import { Link, useLocation, useParams } from 'wouter';
import { api, APIError, errorText, must, raw, type Site } from '../api/client';
import { SiteBackups } from '../components/SiteBackups';
import { SiteMetrics } from '../components/SiteMetrics';
import { Conditions, SiteDomains, SiteOverview } from '../components/SiteOverview';
import { SiteCache, SiteSettings, SiteWAF } from '../components/SiteSettings';
import { ConfirmDialog, ErrorAlert, fmtTime, mayResume, phaseColor, siteOrg, sitePath, sitePerms, type LoginLink } from '../components/SiteShared';
import { useSession } from '../session';
import { httpURL } from '../urls';

export const tabs = ['Overview', 'Domains', 'Metrics', 'Backups', 'Cache', 'WAF', 'Settings'];

/** settled phases end the 2 s status polling; the others are watched. */
export function settled(phase?: string): boolean {
  return phase === 'Ready' || phase === 'Failed' || phase === 'Suspended';
}

type Dialog = '' | 'suspend' | 'resume' | 'delete';

function decode(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/**
 * createdPassword takes the admin password the create page may pass in
 * the history state (`admin_password`, or the whole create response under
 * `created`), and removes it so a reload does not show it again.
 */
function createdPassword(): { user: string; password: string } | null {
  const st = (typeof history !== 'undefined' ? history.state : null) as { admin_password?: string; admin_user?: string; created?: { admin_password?: string; admin_user?: string } } | null;
  const c = st?.created ?? st;
  if (!c?.admin_password) return null;
  history.replaceState(null, '');
  return { user: c.admin_user ?? 'admin', password: c.admin_password };
}

export default function SiteDetail({ pollMs = 2000 }: { pollMs?: number }) {
  const params = useParams<{ name: string; tab?: string }>();
  const name = decode(params.name ?? '');
  const tab = tabs.map((t) => t.toLowerCase()).includes(params.tab ?? '') ? params.tab! : 'overview';
  const [, navigate] = useLocation();
  const s = useSession();
  const [site, setSite] = useState<Site | null>(null);
  const [loadErr, setLoadErr] = useState('');
  const [watch, setWatch] = useState(0);
  const [dialog, setDialog] = useState<Dialog>('');
  const [busy, setBusy] = useState('');
  const [actErr, setActErr] = useState('');
  const [link, setLink] = useState<LoginLink | null>(null);
  const [created, setCreated] = useState(createdPassword);

  // Poll the site every pollMs until its phase settles; watch restarts it.
  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const got = await must(api.GET('/v1/sites/{name}', { params: { path: { name } } }));
        if (stop) return;
        setSite(got);
        setLoadErr('');
        if (settled(got.status.phase)) return;
      } catch (e) {
        if (stop) return;
        setLoadErr(errorText(e));
        if (e instanceof APIError && e.status >= 400 && e.status < 500) return;
      }
      timer = setTimeout(run, pollMs);
    };
    void run();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [name, pollMs, watch]);

  const changed = useCallback((next: Site) => {
    setSite(next);
    if (!settled(next.status.phase)) setWatch((w) => w + 1);
  }, []);

  const back = (
    <Anchor component={Link} href="/sites" size="sm">
      ← Sites
    </Anchor>
  );

  if (!site) {
    return (
      <Stack>
        {back}
        <Title order={2}>{name}</Title>
        {loadErr ? (
          <Alert color="red" role="alert" title="Could not load the site">
            {loadErr}{' '}
            <Anchor component={Link} href="/sites">
              Back to the sites
            </Anchor>
          </Alert>
        ) : (
          <Center h="30vh">
            <Loader aria-label="Loading site" />
          </Center>
        )}
      </Stack>
    );
  }

  const perms = sitePerms(s, siteOrg(site));
  const phase = site.status.phase ?? 'Pending';
  const domain = site.spec.domain ?? site.metadata.name;
  const deleting = phase === 'Deleting' || !!site.metadata.deletion_requested;

  async function act(what: string, f: () => Promise<void>) {
    setBusy(what);
    setActErr('');
    try {
      await f();
      setDialog('');
    } catch (e) {
      setActErr(errorText(e));
    } finally {
      setBusy('');
    }
  }

  const openAdmin = () =>
    act('login', async () => {
      const l = await raw<LoginLink>('POST', sitePath(name, '/login-link'));
      const url = httpURL(l.url);
      if (!url) throw new Error('The server sent a sign-in link that is not an http(s) address.');
      setLink({ ...l, url });
      window.open(url, '_blank', 'noopener');
    });
  const suspend = () => act('suspend', async () => changed(await must(api.POST('/v1/sites/{name}/suspend', { params: { path: { name } } }))));
  const resume = () => act('resume', async () => changed(await must(api.POST('/v1/sites/{name}/resume', { params: { path: { name } } }))));
  const del = () =>
    act('delete', async () => {
      await must(api.DELETE('/v1/sites/{name}', { params: { path: { name } } }));
      navigate('/sites');
    });

  const canResume = perms.suspend && mayResume(s, site);

  return (
    <Stack>
      {back}
      <Group justify="space-between" align="flex-start">
        <Stack gap={4}>
          <Group gap="sm">
            <Title order={2} style={{ overflowWrap: 'anywhere' }}>
              {domain}
            </Title>
            <Badge size="lg" color={phaseColor(phase)} data-testid="site-status">
              {phase}
            </Badge>
            {!settled(phase) && <Loader size="xs" aria-label="Watching the site's status" />}
          </Group>
          {httpURL(site.status.url) ? (
            <Anchor href={httpURL(site.status.url)} target="_blank" rel="noreferrer" size="sm">
              {site.status.url}
            </Anchor>
          ) : (
            site.status.url && <Text size="sm">{site.status.url}</Text>
          )}
        </Stack>
        <Group gap="xs">
          {perms.write && (
            <Button onClick={openAdmin} loading={busy === 'login'} disabled={phase !== 'Ready'}>
              Open wp-admin
            </Button>
          )}
          {site.spec.suspended
            ? canResume && (
                <Button variant="default" onClick={() => (setActErr(''), setDialog('resume'))} disabled={deleting}>
                  Resume
                </Button>
              )
            : perms.suspend && (
                <Button variant="default" onClick={() => (setActErr(''), setDialog('suspend'))} disabled={deleting || phase !== 'Ready'}>
                  Suspend
                </Button>
              )}
          {perms.write && (
            <Button color="red" variant="light" onClick={() => (setActErr(''), setDialog('delete'))} disabled={deleting}>
              Delete site
            </Button>
          )}
        </Group>
      </Group>

      {!dialog && <ErrorAlert error={actErr} />}
      {loadErr && <ErrorAlert error={loadErr} title="Could not refresh the site" />}
      {created && (
        <Alert color="yellow" title="WordPress admin password" withCloseButton closeButtonLabel="Hide the password" onClose={() => setCreated(null)}>
          <Text size="sm">
            User {created.user}, password <Code data-testid="admin-password">{created.password}</Code>. It is shown only now: keep it somewhere safe.
          </Text>
          <CopyButton value={created.password}>
            {({ copied, copy }) => (
              <Button size="xs" variant="light" mt="xs" onClick={copy}>
                {copied ? 'Copied' : 'Copy password'}
              </Button>
            )}
          </CopyButton>
        </Alert>
      )}
      {link && (
        <Alert color="blue" title="wp-admin sign-in link" withCloseButton onClose={() => setLink(null)}>
          <Text size="sm">
            A new window signs you in as {link.user}. If none opened,{' '}
            <Anchor href={link.url} target="_blank" rel="noopener">
              open wp-admin
            </Anchor>{' '}
            (usable once, until {fmtTime(link.expires_at)}).
          </Text>
        </Alert>
      )}
      {!settled(phase) && (
        <Alert color={deleting ? 'gray' : 'blue'} title={deleting ? 'Deleting' : 'Provisioning'}>
          <Stack gap="xs">
            <Text size="sm">
              {deleting ? 'The shard is removing the site.' : `The site is ${phase.toLowerCase()}; this page follows it until it is Ready.`}
            </Text>
            <Conditions site={site} onlyFalse />
          </Stack>
        </Alert>
      )}
      {phase === 'Failed' && (
        <Alert color="red" title="The site failed">
          <Conditions site={site} onlyFalse />
        </Alert>
      )}

      <Tabs value={tab} onChange={(v) => v && navigate(`/sites/${encodeURIComponent(name)}/${v}`)} keepMounted={false}>
        <Tabs.List>
          {tabs.map((t) => (
            <Tabs.Tab key={t} value={t.toLowerCase()}>
              {t}
            </Tabs.Tab>
          ))}
        </Tabs.List>
        <Tabs.Panel value="overview" pt="md">
          <SiteOverview site={site} />
        </Tabs.Panel>
        <Tabs.Panel value="domains" pt="md">
          <SiteDomains key={site.metadata.resource_version} site={site} perms={perms} onChange={changed} />
        </Tabs.Panel>
        <Tabs.Panel value="metrics" pt="md">
          <SiteMetrics name={name} />
        </Tabs.Panel>
        <Tabs.Panel value="backups" pt="md">
          <SiteBackups site={site} perms={perms} pollMs={pollMs} />
        </Tabs.Panel>
        <Tabs.Panel value="cache" pt="md">
          <SiteCache site={site} perms={perms} onChange={changed} />
        </Tabs.Panel>
        <Tabs.Panel value="waf" pt="md">
          <SiteWAF site={site} perms={perms} onChange={changed} />
        </Tabs.Panel>
        <Tabs.Panel value="settings" pt="md">
          <SiteSettings site={site} perms={perms} onChange={changed} />
        </Tabs.Panel>
      </Tabs>

      <ConfirmDialog opened={dialog === 'suspend'} title={`Suspend ${domain}?`} action="Suspend" busy={busy === 'suspend'} error={actErr} onConfirm={suspend} onClose={() => setDialog('')}>
        Visitors get 503 until the site is resumed. Nothing is deleted.
      </ConfirmDialog>
      <ConfirmDialog opened={dialog === 'resume'} title={`Resume ${domain}?`} action="Resume" busy={busy === 'resume'} error={actErr} onConfirm={resume} onClose={() => setDialog('')}>
        The site serves visitors again.
      </ConfirmDialog>
      <ConfirmDialog
        opened={dialog === 'delete'}
        title={`Delete ${domain}?`}
        action="Delete site"
        danger
        typeToConfirm={domain}
        busy={busy === 'delete'}
        error={actErr}
        onConfirm={del}
        onClose={() => setDialog('')}
      >
        The site, its database and files are removed from its shard. Backups are kept until retention forgets them.
      </ConfirmDialog>
    </Stack>
  );
}
