// A small line chart in plain SVG (no chart library: a few hundred bytes
// instead of uPlot's ~20 KB), for the site page's metrics.
import { Group, Paper, Text, useMantineTheme } from '@mantine/core';

export interface Series {
  name: string;
  color: string;
  values: number[];
}

const W = 600;
const H = 160;
const PAD = { l: 44, r: 8, t: 8, b: 20 };

/** niceMax rounds a maximum up to 1, 2 or 5 times a power of ten. */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmt(v: number, unit: string): string {
  const s = v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : `${+v.toFixed(1)}`;
  return unit ? `${s} ${unit}` : s;
}

function fmtT(t: string, long: boolean): string {
  const d = new Date(t);
  return long ? d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/**
 * SiteChart draws one or more series over the same times. It is an
 * image for assistive technology, labelled with the title and each
 * series' total or peak, so the figures are not only in the drawing.
 */
export function SiteChart({ title, times, series, unit = '', summary }: { title: string; times: string[]; series: Series[]; unit?: string; summary?: string }) {
  const theme = useMantineTheme();
  const n = times.length;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const x = (i: number) => PAD.l + (n <= 1 ? (W - PAD.l - PAD.r) / 2 : (i * (W - PAD.l - PAD.r)) / (n - 1));
  const y = (v: number) => PAD.t + (H - PAD.t - PAD.b) * (1 - v / max);
  const spanDays = n > 1 ? (new Date(times[n - 1]).getTime() - new Date(times[0]).getTime()) / 86400e3 : 0;
  const label = summary ?? `${title}: ${series.map((s) => `${s.name} peak ${fmt(Math.max(0, ...s.values), unit)}`).join(', ')}`;
  const col = (c: string) => theme.colors[c]?.[6] ?? c;
  return (
    <Paper withBorder p="sm">
      <Group justify="space-between" mb={4}>
        <Text fw={600} size="sm">
          {title}
        </Text>
        <Group gap="sm">
          {series.map((s) => (
            <Group key={s.name} gap={4}>
              <svg width="10" height="10" aria-hidden="true">
                <rect width="10" height="10" fill={col(s.color)} />
              </svg>
              <Text size="xs">{s.name}</Text>
            </Group>
          ))}
        </Group>
      </Group>
      <svg viewBox={`0 0 ${W} ${H}`} width="100%" role="img" aria-label={label} style={{ display: 'block' }}>
        {[0, 0.5, 1].map((f) => (
          <g key={f}>
            <line x1={PAD.l} x2={W - PAD.r} y1={y(max * f)} y2={y(max * f)} stroke="currentColor" strokeOpacity={0.15} />
            <text x={PAD.l - 4} y={y(max * f) + 4} textAnchor="end" fontSize="11" fill="currentColor">
              {fmt(max * f, unit)}
            </text>
          </g>
        ))}
        {n > 0 && (
          <>
            <text x={PAD.l} y={H - 4} fontSize="11" fill="currentColor">
              {fmtT(times[0], spanDays > 1)}
            </text>
            <text x={W - PAD.r} y={H - 4} fontSize="11" textAnchor="end" fill="currentColor">
              {fmtT(times[n - 1], spanDays > 1)}
            </text>
          </>
        )}
        {series.map((s) =>
          n === 1 ? (
            <circle key={s.name} cx={x(0)} cy={y(s.values[0] ?? 0)} r={3} fill={col(s.color)} />
          ) : (
            <polyline key={s.name} fill="none" stroke={col(s.color)} strokeWidth={2} points={s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ')} />
          ),
        )}
      </svg>
    </Paper>
  );
}
