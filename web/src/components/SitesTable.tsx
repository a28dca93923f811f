// The sites list as a virtualised table: only the rows in (and near) the
// window are in the DOM, so thousands of sites scroll without jank.
import { Anchor, Badge, Box, Text } from '@mantine/core';
import { useWindowVirtualizer } from '@tanstack/react-virtual';
import { useLayoutEffect, useRef, useState, type CSSProperties } from 'react';
import { Link } from 'wouter';
import type { Site } from '../api/client';
import { percent, phaseColor, relativeTime, dateTime } from './SitesFormat';

/** SiteSummary is what GET /v1/sites adds to each site (absent fields: unknown). */
export interface SiteSummary {
  last_backup?: string;
  cache_hit_ratio?: number;
  requests_24h?: number;
}

/** SiteRow is a site as GET /v1/sites lists it, with its organisation and summary. */
export type SiteRow = Site & {
  metadata: Site['metadata'] & { org?: string };
  summary?: SiteSummary;
};

/** ROW_HEIGHT is each row's height in pixels (fixed, so no measuring). */
export const ROW_HEIGHT = 44;

const columns = 'minmax(180px, 2fr) 110px minmax(100px, 1fr) minmax(90px, 0.8fr) 80px minmax(170px, 1.6fr) 120px 90px';

const grid: CSSProperties = {
  display: 'grid',
  gridTemplateColumns: columns,
  alignItems: 'center',
  gap: 12,
  padding: '0 12px',
};

const cell: CSSProperties = { overflow: 'hidden', textOverflow: 'ellipsis', whiteSpace: 'nowrap', minWidth: 0 };

const headers = ['Domain', 'Status', 'Organisation', 'Shard', 'Plan', 'URL', 'Last backup', 'Cache hits'];

/** SitesTable lists sites, one row each, rendering only the visible window. */
export function SitesTable({ sites, now = Date.now() }: { sites: SiteRow[]; now?: number }) {
  const body = useRef<HTMLDivElement>(null);
  const [margin, setMargin] = useState(0);
  // The list's distance from the top of the page, for the window scroller.
  useLayoutEffect(() => {
    const el = body.current;
    if (!el) return;
    let top = 0;
    for (let e: HTMLElement | null = el; e; e = e.offsetParent as HTMLElement | null) top += e.offsetTop;
    if (top !== margin) setMargin(top);
  });
  const v = useWindowVirtualizer({
    count: sites.length,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
    scrollMargin: margin,
  });

  return (
    <Box style={{ overflowX: 'auto' }}>
      <Box role="table" aria-label="Sites" aria-rowcount={sites.length + 1} miw={1000}>
        <Box role="rowgroup">
          <Box role="row" aria-rowindex={1} style={{ ...grid, height: ROW_HEIGHT, borderBottom: '2px solid var(--mantine-color-default-border)' }}>
            {headers.map((h) => (
              <Text key={h} role="columnheader" fw={600} size="sm" style={cell}>
                {h}
              </Text>
            ))}
          </Box>
        </Box>
        <Box role="rowgroup" ref={body} style={{ height: v.getTotalSize(), position: 'relative' }}>
          {v.getVirtualItems().map((it) => {
            const s = sites[it.index];
            return (
              <Box
                key={s.metadata.name}
                role="row"
                aria-rowindex={it.index + 2}
                data-testid="site-row"
                style={{
                  ...grid,
                  position: 'absolute',
                  top: 0,
                  left: 0,
                  right: 0,
                  height: ROW_HEIGHT,
                  transform: `translateY(${it.start - v.options.scrollMargin}px)`,
                  borderBottom: '1px solid var(--mantine-color-default-border)',
                }}
              >
                <SiteCells site={s} now={now} />
              </Box>
            );
          })}
        </Box>
      </Box>
    </Box>
  );
}

function SiteCells({ site: s, now }: { site: SiteRow; now: number }) {
  const name = s.metadata.name;
  const phase = s.status?.phase ?? 'Pending';
  const url = s.status?.url;
  const lastBackup = s.summary?.last_backup;
  return (
    <>
      <Box role="cell" style={cell}>
        <Anchor component={Link} href={`/sites/${encodeURIComponent(name)}`} fw={500} size="sm">
          {s.spec?.domain || name}
        </Anchor>
      </Box>
      <Box role="cell" style={cell}>
        <Badge color={phaseColor(phase)} variant="light">
          {phase}
        </Badge>
      </Box>
      <Text role="cell" size="sm" style={cell}>
        {s.metadata.org ?? ''}
      </Text>
      <Text role="cell" size="sm" style={cell}>
        {s.status?.shard ?? ''}
      </Text>
      <Text role="cell" size="sm" style={cell}>
        {s.spec?.plan ?? ''}
      </Text>
      <Box role="cell" style={cell}>
        {url && (
          <Anchor href={url} target="_blank" rel="noopener noreferrer" size="sm" aria-label={`Open ${name} in a new tab`}>
            {url.replace(/^https?:\/\//, '')}
          </Anchor>
        )}
      </Box>
      <Text role="cell" size="sm" style={cell} title={dateTime(lastBackup)}>
        {lastBackup ? relativeTime(lastBackup, now) : <Text span c="dimmed" size="sm" aria-label="unknown">–</Text>}
      </Text>
      <Text role="cell" size="sm" style={cell}>
        {percent(s.summary?.cache_hit_ratio) || <Text span c="dimmed" size="sm" aria-label="unknown">–</Text>}
      </Text>
    </>
  );
}
