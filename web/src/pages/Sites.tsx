// Sites: every site of the current organisation (all for platform staff
// with no organisation chosen), searched on the server, loaded page by page
// (a small first page, then pages of 1000) into a virtualised table.
import { Alert, Button, Code, Group, Loader, Paper, Stack, Text, TextInput, Title } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { useCallback, useEffect, useRef, useState } from 'react';
import { useLocation } from 'wouter';
import { errorText, raw } from '../api/client';
import { SitesTable, type SiteRow } from '../components/SitesTable';
import { useSession } from '../session';

interface SitePage {
  items: SiteRow[];
  continue?: string;
}

/** FIRST_PAGE sites come first, quickly; then pages of NEXT_PAGE. */
export const FIRST_PAGE = 100;
export const NEXT_PAGE = 1000;
/** AUTO_LOAD: pages load by themselves up to this many sites; then "Load more". */
export const AUTO_LOAD = 10000;

/** sitesPath is the GET /v1/sites request for one page. */
export function sitesPath(opts: { org: string; q: string; limit: number; cont?: string }): string {
  const p = new URLSearchParams({ limit: String(opts.limit) });
  if (opts.org) p.set('org', opts.org);
  if (opts.q) p.set('q', opts.q);
  if (opts.cont) p.set('continue', opts.cont);
  return `/v1/sites?${p}`;
}

export default function Sites() {
  const s = useSession();
  const [, navigate] = useLocation();
  const [search, setSearch] = useState('');
  const [q] = useDebouncedValue(search.trim(), 300);
  const [items, setItems] = useState<SiteRow[]>([]);
  // cont is the next page's token, with the listing it belongs to.
  const [cont, setCont] = useState<{ g: number; token: string } | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const [err, setErr] = useState('');
  const [autoLimit, setAutoLimit] = useState(AUTO_LOAD);
  // gen identifies the current listing; answers for an older one are dropped.
  const gen = useRef(0);

  const load = useCallback(
    async (g: number, limit: number, after?: string) => {
      setLoading(true);
      try {
        const page = await raw<SitePage>('GET', sitesPath({ org: s.org, q, limit, cont: after }));
        if (g !== gen.current) return;
        setItems((old) => (after ? old.concat(page.items ?? []) : (page.items ?? [])));
        setCont(page.continue ? { g, token: page.continue } : undefined);
        setErr('');
      } catch (e) {
        if (g !== gen.current) return;
        setErr(errorText(e));
        setCont(undefined);
      } finally {
        if (g === gen.current) setLoading(false);
      }
    },
    [s.org, q],
  );

  // A new organisation or search starts the listing again.
  useEffect(() => {
    const g = ++gen.current;
    setItems([]);
    setCont(undefined);
    setAutoLimit(AUTO_LOAD);
    void load(g, FIRST_PAGE);
  }, [load]);

  // The following pages load by themselves, up to autoLimit.
  useEffect(() => {
    if (!loading && cont && cont.g === gen.current && items.length < autoLimit) void load(cont.g, NEXT_PAGE, cont.token);
  }, [loading, cont, items.length, autoLimit, load]);

  const more = !!cont;
  const count = items.length.toLocaleString('en');
  const empty = !loading && !err && items.length === 0;

  return (
    <Stack>
      <Group justify="space-between" wrap="wrap">
        <Title order={2}>Sites</Title>
        <Button onClick={() => navigate('/sites/new')}>Create site</Button>
      </Group>
      <Group justify="space-between" align="end" wrap="wrap">
        <TextInput
          label="Search sites"
          placeholder="Part of a domain"
          type="search"
          value={search}
          onChange={(e) => setSearch(e.currentTarget.value)}
          w={{ base: '100%', xs: 320 }}
        />
        <Group gap="xs" aria-live="polite">
          {loading && <Loader size="xs" aria-label="Loading sites" />}
          <Text size="sm" c="dimmed" data-testid="sites-count">
            {items.length === 0 && loading
              ? 'Loading sites…'
              : more
                ? `${count} sites loaded, more to come`
                : `${count} ${items.length === 1 ? 'site' : 'sites'}`}
          </Text>
        </Group>
      </Group>
      {err && (
        <Alert color="red" role="alert" title="Could not list the sites">
          {err}
        </Alert>
      )}
      {empty && q === '' && (
        <Paper withBorder p="lg">
          <Stack gap="xs">
            <Title order={3} size="h4">
              No sites yet
            </Title>
            <Text>
              A site is a WordPress installation with its own domain. Choose <b>Create site</b> above, give its domain
              (for example <Code>blog.example.com</Code>), a title and the administrator’s e-mail; the platform
              installs WordPress on a shard and shows its progress. The administrator password appears once, right
              after creation.
            </Text>
            <Text size="sm" c="dimmed">
              From a terminal: <Code>aipress site create blog.example.com --title "My blog" --admin-email me@example.com</Code>
            </Text>
          </Stack>
        </Paper>
      )}
      {empty && q !== '' && <Text>No site matches “{q}”.</Text>}
      {items.length > 0 && <SitesTable sites={items} />}
      {more && !loading && items.length >= autoLimit && (
        <Group justify="center">
          <Button variant="default" onClick={() => setAutoLimit((n) => n + AUTO_LOAD)}>
            Load more
          </Button>
        </Group>
      )}
    </Stack>
  );
}
