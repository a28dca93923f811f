// Small formatting helpers shared by the sites, create-site and jobs pages:
// phase colours, relative times, percentages and the domain check the API
// applies (internal/site/domain.go).

/** phaseColor is the badge colour of a site or job phase. */
export function phaseColor(phase: string | undefined): string {
  switch (phase) {
    case 'Ready':
    case 'Succeeded':
      return 'green';
    case 'Pending':
    case 'Creating':
    case 'Running':
      return 'blue';
    case 'Suspended':
      return 'yellow';
    case 'Deleting':
      return 'gray';
    case 'Failed':
      return 'red';
    default:
      return 'gray';
  }
}

const units: [Intl.RelativeTimeFormatUnit, number][] = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
];

const rtf = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });

/** relativeTime says how long ago (or ahead) iso is from now, e.g. "3 hours ago"; '' for no time. */
export function relativeTime(iso: string | undefined, now: number = Date.now()): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const secs = Math.round((t - now) / 1000);
  for (const [unit, size] of units) {
    if (Math.abs(secs) >= size || unit === 'second') {
      return rtf.format(Math.round(secs / size), unit);
    }
  }
  return '';
}

/** dateTime formats an RFC 3339 time for people, in their locale; '' for none. */
export function dateTime(iso: string | undefined): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : new Date(t).toLocaleString();
}

/** percent formats a 0..1 ratio as "75 %" ('' when unknown). */
export function percent(ratio: number | undefined | null): string {
  if (ratio === undefined || ratio === null || Number.isNaN(ratio)) return '';
  return `${Math.round(ratio * 1000) / 10} %`;
}

/**
 * domainError checks a domain as the API does (lower-cased RFC 1123 host
 * name: two or more dot-separated labels of letters, digits and hyphens,
 * no IP address) and returns why it is refused, or '' when it is fine.
 */
export function domainError(raw: string): string {
  const d = raw.trim();
  if (d === '') return 'Enter the site’s domain, e.g. blog.example.com';
  if (/[^\x00-\x7f]/.test(d)) return 'Only letters, digits, hyphens and dots are allowed (an international name in its xn-- form)';
  const l = d.toLowerCase();
  if (l.length > 253) return 'Longer than 253 characters';
  const labels = l.split('.');
  if (labels.length < 2) return 'Needs at least two labels (e.g. blog.localhost)';
  for (const label of labels) {
    if (label === '') return 'Has an empty label (two dots in a row, or a dot at either end)';
    if (label.length > 63) return `Label “${label}” is longer than 63 characters`;
    if (label.startsWith('-') || label.endsWith('-')) return `Label “${label}” starts or ends with a hyphen`;
    if (label.includes('*')) return 'Wildcards are not allowed';
    if (!/^[a-z0-9-]+$/.test(label)) return 'Only letters, digits, hyphens and dots are allowed';
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1])) return 'Looks like an IP address, not a host name';
  return '';
}
