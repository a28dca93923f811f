// The signed-in frame: header (product, organisation switcher, assistant,
// user menu) and the navigation.
import { AppShell, Burger, Button, Group, Image, Menu, NavLink, Select, Text, UnstyledButton } from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import { lazy, Suspense, useCallback, useRef, useState, type ReactNode } from 'react';
import { Link, useLocation } from 'wouter';
import { useSession } from '../session';
import { pageTitle, useDocumentTitle } from '../title';
import { httpsURL } from '../urls';
import { SkipLink } from './SkipLink';

const ChatPanel = lazy(() => import('./ChatPanel'));

interface NavItem {
  href: string;
  label: string;
  show?: (s: ReturnType<typeof useSession>) => boolean;
}

const nav: NavItem[] = [
  { href: '/sites', label: 'Sites' },
  { href: '/jobs', label: 'Jobs' },
  { href: '/audit', label: 'Audit log' },
  { href: '/members', label: 'Members', show: (s) => !!s.org },
  { href: '/tokens', label: 'API tokens' },
  { href: '/plan', label: 'Plan and usage', show: (s) => !!s.org },
  { href: '/admin/shards', label: 'Shards', show: (s) => s.platform },
  { href: '/admin/orgs', label: 'Organisations', show: (s) => s.platform },
];

export function Layout({ children }: { children: ReactNode }) {
  const s = useSession();
  const [opened, { toggle, close }] = useDisclosure();
  const [chat, setChat] = useState(false);
  const [loc, navigate] = useLocation();
  const product = s.branding.product_name || 'AIPress';
  const logo = httpsURL(s.branding.logo_url);
  const account = s.me?.user?.email ?? s.me?.name ?? '';
  useDocumentTitle(pageTitle(loc));
  // Closing the panel puts focus back where the user opened it from.
  const assistantButton = useRef<HTMLButtonElement>(null);
  const closeChat = useCallback(() => {
    setChat(false);
    assistantButton.current?.focus();
  }, []);
  const orgNames = s.switchable;

  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 220, breakpoint: 'sm', collapsed: { mobile: !opened } }}
      aside={{ width: 420, breakpoint: 'md', collapsed: { desktop: !chat, mobile: !chat } }}
      padding="md"
    >
      <SkipLink target="main" />
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Toggle navigation" />
            <UnstyledButton component={Link} href="/sites" aria-label={`${product} home`}>
              <Group gap="xs" wrap="nowrap">
                {logo && <Image src={logo} alt="" h={28} w="auto" />}
                <Text fw={700} size="lg" data-testid="product-name">
                  {product}
                </Text>
              </Group>
            </UnstyledButton>
          </Group>
          <Group gap="xs" wrap="nowrap">
            {(orgNames.length > 0 || s.platform) && (
              <Select
                aria-label="Organisation"
                placeholder={s.platform ? 'All organisations' : 'Organisation'}
                data={orgNames}
                value={s.org || null}
                onChange={(v) => s.setOrg(v ?? '')}
                clearable={s.platform}
                searchable
                w={{ base: 120, sm: 200 }}
                size="sm"
              />
            )}
            <Button ref={assistantButton} variant={chat ? 'filled' : 'light'} px={{ base: 'xs', sm: 'md' }} onClick={() => setChat((c) => !c)} aria-pressed={chat}>
              Assistant
            </Button>
            <Menu position="bottom-end">
              <Menu.Target>
                <Button variant="subtle" px="xs" aria-label={`Account menu for ${account}`} title={account}>
                  <Text span visibleFrom="sm" inherit>
                    {account}
                  </Text>
                  <Text span hiddenFrom="sm" inherit aria-hidden>
                    ⋮
                  </Text>
                </Button>
              </Menu.Target>
              <Menu.Dropdown>
                <Menu.Item component={Link} href="/tokens">
                  API tokens
                </Menu.Item>
                <Menu.Item
                  onClick={async () => {
                    await s.signOut().catch(() => {});
                    navigate('/signin');
                  }}
                >
                  Sign out
                </Menu.Item>
              </Menu.Dropdown>
            </Menu>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Main">
        {nav
          .filter((n) => !n.show || n.show(s))
          .map((n) => (
            <NavLink
              key={n.href}
              component={Link}
              href={n.href}
              label={n.label}
              active={loc === n.href || loc.startsWith(n.href + '/')}
              onClick={close}
            />
          ))}
      </AppShell.Navbar>
      <AppShell.Main id="main" tabIndex={-1} style={{ outline: 'none' }}>
        {children}
      </AppShell.Main>
      <AppShell.Aside p="xs" aria-label="Assistant">
        {chat && (
          <Suspense fallback={null}>
            <ChatPanel onClose={closeChat} />
          </Suspense>
        )}
      </AppShell.Aside>
    </AppShell>
  );
}
