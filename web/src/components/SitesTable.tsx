// The sites list as a virtualised table: only the rows in (and near) the
// window are in the DOM, so thousands of sites scroll without jank.
import { Box, Text } from '@mantine/core';
import { useWindowVirtualizer } from '@tanstack/react-virtual';
import { memo, useEffect, useLayoutEffect, useRef, useState, type CSSProperties } from 'react';
import { Link } from 'wouter';
import type { Site } from '../api/client';
import { httpURL } from '../urls';
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

// Rows are plain elements with constant styles (no component library in
// the row): a fast scroll replaces every visible row each frame, and
// mounting a few hundred plain elements fits in a frame where as many
// styled components do not (bench/portal measures it).
const rowBase: CSSProperties = {
  ...grid,
  position: 'absolute',
  top: 0,
  left: 0,
  right: 0,
  height: ROW_HEIGHT,
  borderBottom: '1px solid var(--mantine-color-default-border)',
  fontSize: 'var(--mantine-font-size-sm)',
};
const link: CSSProperties = { ...cell, color: 'var(--mantine-color-anchor)', textDecoration: 'none' };
const strong: CSSProperties = { ...link, fontWeight: 500 };
const dimmed: CSSProperties = { color: 'var(--mantine-color-dimmed)' };
const visuallyHidden: CSSProperties = {
  position: 'absolute',
  width: 1,
  height: 1,
  margin: -1,
  padding: 0,
  overflow: 'hidden',
  clip: 'rect(0 0 0 0)',
  whiteSpace: 'nowrap',
  border: 0,
};

/** unknown: a dash for the eye, the word for a screen reader. */
const unknown = (
  <>
    <span style={dimmed} aria-hidden>
      –
    </span>
    <span style={visuallyHidden}>unknown</span>
  </>
);
const badgeBase: CSSProperties = {
  display: 'inline-block',
  padding: '0 8px',
  borderRadius: 'var(--mantine-radius-xl)',
  fontSize: 11,
  fontWeight: 700,
  lineHeight: '20px',
  textTransform: 'uppercase',
  letterSpacing: '0.25px',
};
const badges = new Map<string, CSSProperties>();
function badgeStyle(color: string): CSSProperties {
  let b = badges.get(color);
  if (!b) {
    b = { ...badgeBase, background: `var(--mantine-color-${color}-light)`, color: `var(--mantine-color-${color}-light-color)` };
    badges.set(color, b);
  }
  return b;
}

/** SitesTable lists sites, one row each, rendering only the visible window. */
export function SitesTable({ sites, now: fixedNow }: { sites: SiteRow[]; now?: number }) {
  const body = useRef<HTMLDivElement>(null);
  const [margin, setMargin] = useState(0);
  // "an hour ago" moves once a minute, not on every scroll frame.
  const [clock, setClock] = useState(() => Date.now());
  useEffect(() => {
    if (fixedNow !== undefined) return;
    const t = setInterval(() => setClock(Date.now()), 60_000);
    return () => clearInterval(t);
  }, [fixedNow]);
  const now = fixedNow ?? clock;
  // The list's distance from the top of the page, for the window
  // scroller: measured when the page's layout changes, not every frame.
  useLayoutEffect(() => {
    const measure = () => {
      const el = body.current;
      if (!el) return;
      setMargin(el.getBoundingClientRect().top + window.scrollY);
    };
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(document.body);
    return () => ro.disconnect();
  }, []);
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
        <div role="rowgroup" ref={body} style={{ height: v.getTotalSize(), position: 'relative' }}>
          {v.getVirtualItems().map((it) => (
            <SiteRowView key={sites[it.index].metadata.name} site={sites[it.index]} index={it.index} y={it.start - v.options.scrollMargin} now={now} />
          ))}
        </div>
      </Box>
    </Box>
  );
}

const SiteRowView = memo(function SiteRowView({ site: s, index, y, now }: { site: SiteRow; index: number; y: number; now: number }) {
  const name = s.metadata.name;
  const phase = s.status?.phase ?? 'Pending';
  const url = s.status?.url;
  const href = httpURL(url);
  const lastBackup = s.summary?.last_backup;
  const ratio = percent(s.summary?.cache_hit_ratio);
  return (
    <div role="row" aria-rowindex={index + 2} data-testid="site-row" style={{ ...rowBase, transform: `translateY(${y}px)` }}>
      <div role="cell" style={cell}>
        <Link href={`/sites/${encodeURIComponent(name)}`} style={strong}>
          {s.spec?.domain || name}
        </Link>
      </div>
      <div role="cell" style={cell}>
        <span style={badgeStyle(phaseColor(phase))}>{phase}</span>
      </div>
      <div role="cell" style={cell}>
        {s.metadata.org ?? ''}
      </div>
      <div role="cell" style={cell}>
        {s.status?.shard ?? ''}
      </div>
      <div role="cell" style={cell}>
        {s.spec?.plan ?? ''}
      </div>
      <div role="cell" style={cell}>
        {href ? (
          <a href={href} target="_blank" rel="noopener noreferrer" style={link} aria-label={`Open ${name} in a new tab`}>
            {href.replace(/^https?:\/\//i, '')}
          </a>
        ) : (
          url
        )}
      </div>
      <div role="cell" style={cell} title={dateTime(lastBackup)}>
        {lastBackup ? relativeTime(lastBackup, now) : unknown}
      </div>
      <div role="cell" style={cell}>
        {ratio || unknown}
      </div>
    </div>
  );
});
