// document.title follows the page: "Sites — <product>", so screen-reader
// users, tabs and history tell pages apart.
import { useEffect } from 'react';
import { useSession } from './session';

/** useDocumentTitle sets the tab title to "<page> — <product>". */
export function useDocumentTitle(page: string) {
  const product = useSession().branding.product_name || 'AIPress';
  useEffect(() => {
    document.title = page ? `${page} — ${product}` : product;
  }, [page, product]);
}

const titles: [RegExp, string | ((m: RegExpMatchArray) => string)][] = [
  [/^\/sites\/new\/?$/, 'New site'],
  [/^\/sites\/([^/]+)/, (m) => `${safeDecode(m[1])} — Sites`],
  [/^\/sites\/?$/, 'Sites'],
  [/^\/jobs\/([^/]+)/, (m) => `Job ${safeDecode(m[1])}`],
  [/^\/jobs\/?$/, 'Jobs'],
  [/^\/audit/, 'Audit log'],
  [/^\/members/, 'Members'],
  [/^\/tokens/, 'API tokens'],
  [/^\/plan/, 'Plan and usage'],
  [/^\/device/, 'Device sign-in'],
  [/^\/admin\/shards/, 'Shards'],
  [/^\/admin\/orgs/, 'Organisations'],
];

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** pageTitle names the signed-in page at path. */
export function pageTitle(path: string): string {
  for (const [re, t] of titles) {
    const m = path.match(re);
    if (m) return typeof t === 'string' ? t : t(m);
  }
  return 'Page not found';
}
