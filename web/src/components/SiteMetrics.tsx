// The site page's Metrics tab (contract 2: GET /v1/sites/{name}/metrics).
import { Center, Loader, SegmentedControl, SimpleGrid, Stack, Text } from '@mantine/core';
import { useEffect, useState } from 'react';
import { errorText, raw } from '../api/client';
import { SiteChart } from './SiteChart';
import { ErrorAlert, fmtBytes, sitePath, type Metrics } from './SiteShared';

const ranges = ['1h', '6h', '24h', '7d'];

function Stat({ label, value }: { label: string; value: string }) {
  return (
    <div>
      <Text size="xs" c="dimmed" tt="uppercase" fw={600}>
        {label}
      </Text>
      <Text fw={700} size="lg">
        {value}
      </Text>
    </div>
  );
}

export function SiteMetrics({ name, refreshMs = 10000 }: { name: string; refreshMs?: number }) {
  const [range, setRange] = useState('1h');
  const [m, setM] = useState<Metrics | null>(null);
  const [err, setErr] = useState('');
  const [loading, setLoading] = useState(true);

  // Loaded at once, then refreshed every refreshMs (edges report every
  // few seconds) while the tab is open.
  useEffect(() => {
    let stop = false;
    setLoading(true);
    setErr('');
    const load = () =>
      raw<Metrics>('GET', `${sitePath(name, '/metrics')}?range=${range}`)
        .then((d) => {
          if (!stop) {
            setM(d);
            setErr('');
          }
        })
        .catch((e) => !stop && setErr(errorText(e)))
        .finally(() => !stop && setLoading(false));
    void load();
    const timer = setInterval(() => void load(), refreshMs);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, [name, range, refreshMs]);

  const pts = m?.points ?? [];
  const t = m?.totals;
  const times = pts.map((p) => p.t);
  const empty = !loading && !err && (!t || !t.requests) && !pts.some((p) => p.requests > 0);

  return (
    <Stack>
      <div role="group" aria-label="Time range">
        <SegmentedControl value={range} onChange={setRange} data={ranges.map((r) => ({ value: r, label: r }))} />
      </div>
      <ErrorAlert error={err} title="Could not load the metrics" />
      {loading && !m ? (
        <Center h={120}>
          <Loader aria-label="Loading metrics" />
        </Center>
      ) : empty ? (
        <Text c="dimmed" data-testid="metrics-empty">
          No traffic in the last {range}. Charts appear once the site gets requests.
        </Text>
      ) : (
        m &&
        t && (
          <>
            <SimpleGrid cols={{ base: 2, sm: 3, md: 6 }}>
              <Stat label="Requests" value={String(t.requests)} />
              <Stat label="Cache hit ratio" value={t.cache_hit_ratio !== undefined ? `${Math.round(t.cache_hit_ratio * 100)} %` : '—'} />
              <Stat label="p50" value={`${(t.p50_ms ?? 0).toFixed(1)} ms`} />
              <Stat label="p99" value={`${(t.p99_ms ?? 0).toFixed(1)} ms`} />
              <Stat label="5xx errors" value={String(t.errors_5xx ?? 0)} />
              <Stat label="Sent" value={fmtBytes(t.bytes ?? 0)} />
            </SimpleGrid>
            <SimpleGrid cols={{ base: 1, lg: 2 }}>
              <SiteChart title="Requests" times={times} series={[{ name: 'requests', color: 'blue', values: pts.map((p) => p.requests) }, { name: '5xx', color: 'red', values: pts.map((p) => p.errors_5xx) }]} />
              <SiteChart title="Cache hits and misses" times={times} series={[{ name: 'hits', color: 'green', values: pts.map((p) => p.cache_hits) }, { name: 'misses', color: 'orange', values: pts.map((p) => p.cache_misses) }]} />
              <SiteChart title="Latency" unit="ms" times={times} series={[{ name: 'p50', color: 'blue', values: pts.map((p) => p.p50_ms) }, { name: 'p99', color: 'grape', values: pts.map((p) => p.p99_ms) }]} />
              <SiteChart title="PHP time" unit="ms" times={times} series={[{ name: 'PHP', color: 'violet', values: pts.map((p) => p.php_ms) }]} />
              <SiteChart title="WAF blocks" times={times} series={[{ name: 'blocks', color: 'red', values: pts.map((p) => p.waf_blocks) }]} />
            </SimpleGrid>
          </>
        )
      )}
    </Stack>
  );
}
