// URLs that come from the API (a site's address, a wp-admin sign-in link,
// a white-label logo) are used as link targets and image sources only when
// they are absolute http(s) URLs: never javascript:, data: or the like.

/** httpURL returns u when it is an absolute http: or https: URL, else undefined. */
export function httpURL(u: string | null | undefined): string | undefined {
  return checked(u, ['http:', 'https:']);
}

/** httpsURL returns u when it is an absolute https: URL, else undefined. */
export function httpsURL(u: string | null | undefined): string | undefined {
  return checked(u, ['https:']);
}

function checked(u: string | null | undefined, schemes: string[]): string | undefined {
  if (typeof u !== 'string' || u === '') return undefined;
  // Browsers strip these before parsing; refuse rather than guess.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f]/.test(u)) return undefined;
  try {
    return schemes.includes(new URL(u).protocol) ? u : undefined;
  } catch {
    return undefined; // relative or malformed
  }
}
