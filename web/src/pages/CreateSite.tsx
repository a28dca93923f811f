// Create site: domain, title, administrator e-mail and (when the user can
// choose) the organisation; POST /v1/sites. The administrator password is
// in that answer only, so the page shows it once, with the site's status
// live, before the user continues to the site's page.
import { Alert, Badge, Button, Code, CopyButton, Group, Paper, Select, Stack, Text, TextInput, Title } from '@mantine/core';
import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { useLocation } from 'wouter';
import { api, errorText, must, type Schemas } from '../api/client';
import { domainError, phaseColor } from '../components/SitesFormat';
import { useSession } from '../session';

type Created = Schemas['CreateSiteResponse'];

/** titleError checks a title as the API does (1-200 characters, no control characters). */
export function titleError(t: string): string {
  if (t.trim() === '') return 'Enter a title';
  if (t.length > 200) return 'At most 200 characters';
  if (/[\u0000-\u001f\u007f]/.test(t)) return 'No line breaks or control characters';
  return '';
}

/** pollMs is how often the new site's status is read (tests shorten it). */
export default function CreateSite({ pollMs = 2000 }: { pollMs?: number }) {
  const s = useSession();
  const [, navigate] = useLocation();
  const [domain, setDomain] = useState('');
  const [title, setTitle] = useState('');
  const [email, setEmail] = useState(s.me?.user?.email ?? '');
  const [org, setOrg] = useState<string | null>(s.org || null);
  const [visible, setVisible] = useState<string[]>([]);
  const [touched, setTouched] = useState({ domain: false, title: false });
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const [created, setCreated] = useState<Created | null>(null);

  // The organisations the user may see (members of a partner see its
  // customers; platform staff see all); the API decides who may create.
  useEffect(() => {
    let stop = false;
    void (async () => {
      try {
        const l = await must(api.GET('/v1/orgs', { params: { query: { limit: 1000 } } }));
        if (!stop) setVisible((l.items ?? []).map((o) => o.name));
      } catch {
        // The user's own organisations (from the session) remain.
      }
    })();
    return () => {
      stop = true;
    };
  }, []);

  const orgs = useMemo(() => [...new Set([...Object.keys(s.orgs), ...visible])].sort(), [s.orgs, visible]);
  const chooseOrg = orgs.length > 1 || s.platform;
  // With one organisation, the site goes there.
  const target = chooseOrg ? (org ?? '') : (orgs[0] ?? '');

  const dErr = domainError(domain);
  const tErr = titleError(title);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setTouched({ domain: true, title: true });
    if (dErr || tErr) return;
    setBusy(true);
    setErr('');
    try {
      // admin_user and plan keep the API's defaults (the generated type marks defaulted fields required).
      const body: Partial<Schemas['CreateSiteRequest']> = { domain: domain.trim().toLowerCase(), title, admin_email: email.trim() };
      if (target) body.org = target;
      setCreated(await must(api.POST('/v1/sites', { body: body as Schemas['CreateSiteRequest'] })));
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  if (created) return <CreatedSite created={created} pollMs={pollMs} onContinue={() => navigate(`/sites/${encodeURIComponent(created.domain)}`)} />;

  return (
    <Stack maw={560}>
      <Title order={2}>Create site</Title>
      <Paper withBorder p="lg">
        <form onSubmit={submit} aria-label="Create site" noValidate>
          <Stack>
            {err && (
              <Alert color="red" role="alert" title="Could not create the site">
                {err}
              </Alert>
            )}
            <TextInput
              label="Domain"
              description="The site's host name, e.g. blog.example.com (lower case; an international name in its xn-- form)."
              required
              autoCapitalize="none"
              autoCorrect="off"
              spellCheck={false}
              value={domain}
              onChange={(e) => setDomain(e.currentTarget.value)}
              onBlur={() => setTouched((t) => ({ ...t, domain: true }))}
              error={touched.domain && dErr}
            />
            <TextInput
              label="Title"
              required
              value={title}
              onChange={(e) => setTitle(e.currentTarget.value)}
              onBlur={() => setTouched((t) => ({ ...t, title: true }))}
              error={touched.title && tErr}
            />
            <TextInput
              label="Admin e-mail"
              description="The WordPress administrator's address."
              type="email"
              required
              value={email}
              onChange={(e) => setEmail(e.currentTarget.value)}
            />
            {chooseOrg && (
              <Select
                label="Organisation"
                description={s.platform ? 'Empty: the platform’s default organisation.' : undefined}
                placeholder={s.platform ? 'default' : 'Choose an organisation'}
                data={orgs}
                value={org}
                onChange={setOrg}
                searchable
                clearable={s.platform}
                required={!s.platform}
              />
            )}
            <Group justify="flex-end">
              <Button variant="default" onClick={() => navigate('/sites')}>
                Cancel
              </Button>
              <Button type="submit" loading={busy}>
                Create site
              </Button>
            </Group>
          </Stack>
        </form>
      </Paper>
    </Stack>
  );
}

/** CreatedSite shows the new site's administrator password once, and its status as it converges. */
function CreatedSite({ created, pollMs, onContinue }: { created: Created; pollMs: number; onContinue: () => void }) {
  const [phase, setPhase] = useState<string>(created.status ?? 'Pending');
  const name = created.domain;

  // Follow the site's phase while it is being installed.
  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const st = await must(api.GET('/v1/sites/{name}', { params: { path: { name } } }));
        if (stop) return;
        const p = st.status?.phase ?? 'Pending';
        setPhase(p);
        if (p === 'Ready' || p === 'Failed') return;
      } catch {
        if (stop) return;
      }
      timer = setTimeout(tick, pollMs);
    };
    if (phase !== 'Ready' && phase !== 'Failed') timer = setTimeout(tick, pollMs / 2);
    return () => {
      stop = true;
      if (timer) clearTimeout(timer);
    };
  }, [name, pollMs]);

  return (
    <Stack maw={560}>
      <Title order={2}>Create site</Title>
      <Paper withBorder p="lg">
        <Stack>
          <Group gap="sm">
            <Text fw={600}>{name} was created</Text>
            <Badge color={phaseColor(phase)} variant="light" data-testid="create-status">
              {phase}
            </Badge>
          </Group>
          <Text size="sm" c="dimmed">
            It is installed on shard {created.shard || '(being chosen)'}; its page shows the progress.
          </Text>
          <Alert color="yellow" title="Save the administrator password now">
            It is shown only this once: the platform keeps only a hash of it.
          </Alert>
          <Group gap="xs" wrap="nowrap">
            <Text size="sm" w={130}>
              Administrator
            </Text>
            <Code data-testid="admin-user">{created.admin_user}</Code>
          </Group>
          <Group gap="xs" wrap="nowrap" align="center">
            <Text size="sm" w={130}>
              Password
            </Text>
            <Code data-testid="admin-password" style={{ wordBreak: 'break-all' }}>
              {created.admin_password}
            </Code>
            <CopyButton value={created.admin_password}>
              {({ copied, copy }) => (
                <Button size="xs" variant="light" color={copied ? 'teal' : undefined} onClick={copy}>
                  {copied ? 'Copied' : 'Copy password'}
                </Button>
              )}
            </CopyButton>
          </Group>
          <Group justify="flex-end">
            <Button onClick={onContinue}>Continue to site</Button>
          </Group>
        </Stack>
      </Paper>
    </Stack>
  );
}
