// Small pieces the accounts and operator pages share: loading a call's
// data, the error Alert, a confirmation dialog, and formatting.
import { Alert, Button, Group, Modal, Stack, Text } from '@mantine/core';
import { useCallback, useEffect, useRef, useState, type ReactNode } from 'react';
import { errorText } from '../api/client';

export interface Loaded<T> {
  data: T | undefined;
  error: string;
  loading: boolean;
  /** reload runs the call again, keeping the old data until it answers. */
  reload(): Promise<void>;
}

/**
 * useLoad runs fn when deps change (and on reload) and keeps its latest
 * answer; answers that arrive after a newer call started are dropped.
 */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(true);
  const gen = useRef(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const reload = useCallback(async () => {
    const my = ++gen.current;
    setLoading(true);
    try {
      const d = await fnRef.current();
      if (my !== gen.current) return;
      setData(d);
      setError('');
    } catch (e) {
      if (my !== gen.current) return;
      setError(errorText(e));
    } finally {
      if (my === gen.current) setLoading(false);
    }
  }, []);
  useEffect(() => {
    void reload();
    return () => {
      gen.current++;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return { data, error, loading, reload };
}

/** ErrorAlert shows the server's message, or nothing when there is none. */
export function ErrorAlert({ error, title }: { error: string; title?: string }) {
  if (!error) return null;
  return (
    <Alert color="red" role="alert" title={title ?? 'Something went wrong'}>
      {error}
    </Alert>
  );
}

/**
 * ConfirmDialog asks before an action; its confirm button repeats the
 * action's name. onConfirm's error is shown in the dialog, which then
 * stays open.
 */
export function ConfirmDialog(props: {
  opened: boolean;
  title: string;
  confirm: string;
  children?: ReactNode;
  color?: string;
  onConfirm(): Promise<void>;
  onClose(): void;
}) {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  useEffect(() => {
    if (props.opened) setErr('');
  }, [props.opened]);
  async function go() {
    setBusy(true);
    setErr('');
    try {
      await props.onConfirm();
      props.onClose();
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <Modal opened={props.opened} onClose={props.onClose} title={props.title} centered>
      <Stack>
        {props.children && <Text component="div">{props.children}</Text>}
        <ErrorAlert error={err} />
        <Group justify="flex-end">
          <Button variant="default" onClick={props.onClose}>
            Cancel
          </Button>
          <Button color={props.color ?? 'red'} loading={busy} onClick={go}>
            {props.confirm}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

/** fmtTime shows an RFC 3339 time in the user's locale ('' → '—'). */
export function fmtTime(s?: string): string {
  if (!s) return '—';
  const d = new Date(s);
  if (isNaN(d.getTime())) return s;
  return d.toLocaleString();
}

/** ago says how long ago an RFC 3339 time was, coarsely. */
export function ago(s: string | undefined, now = Date.now()): string {
  if (!s) return 'never';
  const t = new Date(s).getTime();
  if (isNaN(t)) return s;
  const sec = Math.round((now - t) / 1000);
  if (sec < 0) return 'just now';
  if (sec < 60) return `${sec} s ago`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ago`;
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ago`;
  return `${Math.floor(sec / 86400)} d ago`;
}

/** percent of used in limit for a Progress (0 when there is no limit). */
export function percent(used = 0, limit = 0): number {
  if (!limit) return 0;
  return Math.min(100, Math.round((used / limit) * 100));
}

/** ROLES are the organisation roles, most powerful first. */
export const ROLES = ['owner', 'developer', 'viewer', 'billing'] as const;
