// Shared pieces of the site page: what the caller may do with a site,
// the contract types of the endpoints schema.d.ts does not know yet, and
// the confirmation dialog destructive actions use.
import { Alert, Button, Group, Modal, Stack, Text, TextInput } from '@mantine/core';
import { useState, type ReactNode } from 'react';
import type { Site } from '../api/client';
import type { Session } from '../session';

/** SiteWithOrg is a Site as the API serves it: metadata.org is sent but not in openapi.yaml yet. */
export type SiteWithOrg = Site & { metadata: Site['metadata'] & { org?: string } };

/** siteOrg is the organisation owning the site ('' when the API did not say). */
export function siteOrg(s: Site): string {
  return (s as SiteWithOrg).metadata.org ?? '';
}

/** SitePerms mirrors internal/api/authz.go for one site; the API stays the authority. */
export interface SitePerms {
  /** write: change, delete, purge, back up, restore, clone, sign in to wp-admin. */
  write: boolean;
  /** suspend: suspend and resume. */
  suspend: boolean;
  /** secrets: rotate the site's secrets. */
  secrets: boolean;
}

const platformGrants: Record<string, SitePerms> = {
  admin: { write: true, suspend: true, secrets: true },
  support: { write: false, suspend: true, secrets: false },
};

const orgGrants: Record<string, SitePerms> = {
  owner: { write: true, suspend: true, secrets: true },
  developer: { write: true, suspend: true, secrets: true },
};

const none: SitePerms = { write: false, suspend: false, secrets: false };

/**
 * sitePerms says what the session may do with a site of organisation org
 * (the current organisation when the site does not name one): the union
 * of its platform role's grants and its role in that organisation.
 */
export function sitePerms(s: Pick<Session, 'me' | 'orgs' | 'org'>, org: string): SitePerms {
  const p = platformGrants[s.me?.platform_role ?? ''] ?? none;
  const o = orgGrants[s.orgs[org || s.org] ?? ''] ?? none;
  return { write: p.write || o.write, suspend: p.suspend || o.suspend, secrets: p.secrets || o.secrets };
}

/** mayResume: a site the platform suspended is resumed only by platform staff (admin, support). */
export function mayResume(s: Pick<Session, 'me'>, site: Site): boolean {
  if (site.spec.suspended_by !== 'platform') return true;
  return ['admin', 'support'].includes(s.me?.platform_role ?? '');
}

/** Contract 2: GET /v1/sites/{name}/metrics. */
export interface MetricsPoint {
  t: string;
  requests: number;
  cache_hits: number;
  cache_misses: number;
  errors_5xx: number;
  p50_ms: number;
  p99_ms: number;
  php_ms: number;
  waf_blocks: number;
  bytes: number;
}

export interface Metrics {
  site: string;
  range: string;
  step_seconds: number;
  points: MetricsPoint[];
  totals: Omit<MetricsPoint, 't'> & { cache_hit_ratio?: number };
}

/** Contract 3: POST /v1/sites/{name}/login-link. */
export interface LoginLink {
  url: string;
  expires_at: string;
  user: string;
}

/** sitePath is the API path of a site (its name escaped). */
export function sitePath(name: string, rest = ''): string {
  return `/v1/sites/${encodeURIComponent(name)}${rest}`;
}

/** phaseColor is the badge colour of a site or job phase. */
export function phaseColor(phase?: string): string {
  switch (phase) {
    case 'Ready':
    case 'Succeeded':
      return 'green';
    case 'Failed':
      return 'red';
    case 'Suspended':
      return 'orange';
    case 'Deleting':
      return 'gray';
    default:
      return 'blue';
  }
}

/** ErrorAlert shows the server's message, if any. */
export function ErrorAlert({ error, title }: { error: string; title?: string }) {
  if (!error) return null;
  return (
    <Alert color="red" role="alert" title={title ?? 'The request failed'}>
      {error}
    </Alert>
  );
}

/**
 * ConfirmDialog asks before an action. With typeToConfirm the user must
 * type that text (the site's domain) into "Type the domain to confirm"
 * before the confirm button, labelled with the action, is enabled.
 */
export function ConfirmDialog(props: {
  opened: boolean;
  title: string;
  action: string;
  onConfirm(): void | Promise<void>;
  onClose(): void;
  typeToConfirm?: string;
  danger?: boolean;
  busy?: boolean;
  error?: string;
  children?: ReactNode;
}) {
  const [typed, setTyped] = useState('');
  const ok = !props.typeToConfirm || typed.trim().toLowerCase() === props.typeToConfirm.toLowerCase();
  const close = () => {
    setTyped('');
    props.onClose();
  };
  return (
    <Modal opened={props.opened} onClose={close} title={props.title} centered>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (ok) void props.onConfirm();
        }}
      >
        <Stack>
          {props.children && <Text size="sm">{props.children}</Text>}
          <ErrorAlert error={props.error ?? ''} />
          {props.typeToConfirm && (
            <TextInput
              label="Type the domain to confirm"
              description={props.typeToConfirm}
              autoComplete="off"
              value={typed}
              onChange={(e) => setTyped(e.currentTarget.value)}
              data-autofocus
            />
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={close}>
              Cancel
            </Button>
            <Button type="submit" color={props.danger ? 'red' : undefined} disabled={!ok} loading={props.busy}>
              {props.action}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/** fmtTime formats an RFC 3339 time for people ('' stays ''). */
export function fmtTime(t?: string): string {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d.getTime()) ? t : d.toLocaleString();
}

/** fmtBytes formats a byte count (binary units). */
export function fmtBytes(n?: number): string {
  if (n === undefined || n === null) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${u[i]}`;
}
