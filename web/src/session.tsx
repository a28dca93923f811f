// The signed-in user, the organisation they work in and its white-label
// branding, shared by every page.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { api, type Branding, type WhoAmI } from './api/client';

export interface Session {
  me: WhoAmI | null;
  loading: boolean;
  /** org is the organisation the user works in ('' for none). */
  org: string;
  setOrg(org: string): void;
  /** orgs the user acts in, with their role. */
  orgs: Record<string, string>;
  /**
   * switchable lists the organisations the switcher offers: the user's own,
   * and for platform staff every organisation (the first 1,000).
   */
  switchable: string[];
  /** platform is true for platform staff (admin, operator, support, viewer). */
  platform: boolean;
  /** admin or operator: may run shards and see every organisation. */
  operator: boolean;
  branding: Branding;
  refresh(): Promise<void>;
  signOut(): Promise<void>;
}

const Ctx = createContext<Session | null>(null);

const ORG_KEY = 'aipress.org';

/**
 * Per-user state a browser tab keeps: the assistant conversation (with
 * tool arguments and results), pending invitation and reset secrets.
 * Signing out drops all of it so the next user of the tab sees none.
 */
const SESSION_KEYS = ['aipress.assistant', 'aipress.invite', 'aipress.reset'];
const LOCAL_KEYS = [ORG_KEY];

/** forgetUserState removes what the signed-in user left in storage. */
export function forgetUserState() {
  for (const [store, keys] of [
    [() => sessionStorage, SESSION_KEYS],
    [() => localStorage, LOCAL_KEYS],
  ] as const) {
    for (const k of keys) {
      try {
        store().removeItem(k);
      } catch {
        // storage disabled: nothing kept
      }
    }
  }
}

/** SIGNED_OUT is the window event open views (the chat panel) reset on. */
export const SIGNED_OUT = 'aipress:signed-out';

export function SessionProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<WhoAmI | null>(null);
  const [loading, setLoading] = useState(true);
  const [org, setOrgState] = useState<string>(() => localStorage.getItem(ORG_KEY) ?? '');
  const [branding, setBranding] = useState<Branding>({});

  const refresh = useCallback(async () => {
    setLoading(true);
    try {
      const { data, response } = await api.GET('/v1/whoami');
      setMe(response.ok && data ? data : null);
    } catch {
      setMe(null);
    } finally {
      setLoading(false);
    }
  }, []);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  const orgs = useMemo(() => (me?.orgs ?? {}) as Record<string, string>, [me]);
  const platformRole = me?.platform_role ?? '';
  const platform = ['admin', 'operator', 'support', 'viewer'].includes(platformRole);
  const operator = platformRole === 'admin' || platformRole === 'operator';
  const [staffOrgs, setStaffOrgs] = useState<string[]>([]);

  // Platform staff switch to any organisation.
  useEffect(() => {
    let stop = false;
    if (!me || !platform) {
      setStaffOrgs([]);
      return;
    }
    void (async () => {
      const { data } = await api.GET('/v1/orgs', { params: { query: { limit: 1000 } } });
      if (!stop) setStaffOrgs((data?.items ?? []).map((o) => o.name));
    })();
    return () => {
      stop = true;
    };
  }, [me, platform]);
  const switchable = useMemo(() => [...new Set([...Object.keys(orgs), ...staffOrgs])].sort(), [orgs, staffOrgs]);

  // Keep the chosen organisation valid: the first one the user acts in.
  useEffect(() => {
    if (!me) return;
    const names = Object.keys(orgs).sort();
    if (org && (names.includes(org) || platform)) return;
    const next = names[0] ?? '';
    if (next !== org) {
      setOrgState(next);
      localStorage.setItem(ORG_KEY, next);
    }
  }, [me, orgs, org, platform]);

  // White-label: the organisation's branding, else its partner's.
  useEffect(() => {
    let stop = false;
    if (!me || !org) {
      setBranding({});
      return;
    }
    void (async () => {
      const { data } = await api.GET('/v1/orgs/{org}', { params: { path: { org } } });
      let b: Branding = data?.branding ?? {};
      if (data?.partner && !b.product_name && !b.logo_url && !b.primary_color) {
        const p = await api.GET('/v1/orgs/{org}', { params: { path: { org: data.partner } } });
        b = p.data?.branding ?? b;
      }
      if (!stop) setBranding(b);
    })();
    return () => {
      stop = true;
    };
  }, [me, org]);

  const setOrg = useCallback((o: string) => {
    setOrgState(o);
    localStorage.setItem(ORG_KEY, o);
  }, []);

  const signOut = useCallback(async () => {
    // Stop and empty the chat panel first, so no stream writes it back.
    window.dispatchEvent(new Event(SIGNED_OUT));
    forgetUserState();
    try {
      await api.POST('/v1/auth/logout');
    } finally {
      forgetUserState();
      setOrgState('');
      setBranding({});
      setMe(null);
    }
  }, []);

  const value: Session = { me, loading, org, setOrg, orgs, switchable, platform, operator, branding, refresh, signOut };
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useSession(): Session {
  const s = useContext(Ctx);
  if (!s) throw new Error('useSession outside SessionProvider');
  return s;
}

/** SessionContext lets tests provide a fixed session. */
export const SessionContext = Ctx;
