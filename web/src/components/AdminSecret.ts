// Secrets that arrive in the URL fragment (/invite#inv_…,
// /reset-password#aipr_…): a browser never sends the fragment to a
// server. They are moved out of the address bar at once and kept in this
// tab's sessionStorage, so a detour through /signin keeps them without
// ever putting them in a URL that is sent anywhere.

/** decodeFragment percent-decodes a fragment; a malformed one is kept raw. */
export function decodeFragment(f: string): string {
  try {
    return decodeURIComponent(f);
  } catch {
    return f;
  }
}

/**
 * takeFragmentSecret returns the secret of the URL fragment (removing it
 * from the address bar) or, when there is none, the one kept under key.
 */
export function takeFragmentSecret(key: string): string {
  const h = decodeFragment(window.location.hash.replace(/^#/, '')).trim();
  if (h) {
    try {
      sessionStorage.setItem(key, h);
    } catch {
      // Storage may be disabled; the secret then lives in memory only.
    }
    window.history.replaceState(window.history.state, '', window.location.pathname + window.location.search);
    return h;
  }
  try {
    return sessionStorage.getItem(key) ?? '';
  } catch {
    return '';
  }
}

/** forgetSecret drops a kept secret once it has been used. */
export function forgetSecret(key: string) {
  try {
    sessionStorage.removeItem(key);
  } catch {
    // nothing kept
  }
}
