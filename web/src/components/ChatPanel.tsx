// The assistant's chat panel (in the layout's aside): a conversation that
// streams the assistant's answer, its tool calls as cards with their
// results, and proposals of destructive calls that run only when the user
// confirms them. Changes the assistant makes are announced with the window
// event 'aipress:changed' ({tool, args}) so open pages can refresh.
import { Alert, Button, Group, Loader, Stack, Text, Textarea, Title } from '@mantine/core';
import { useCallback, useEffect, useReducer, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { APIError, errorText } from '../api/client';
import { announceChange } from '../chat/changed';
import { isWrite, load, reduce, save, type Item } from '../chat/conversation';
import { cancelProposal, getAssistant, postStream, RateLimited, type AssistantInfo } from '../chat/stream';
import { SIGNED_OUT } from '../session';
import { AssistantBubble, ErrorNote, ProposalCard, ToolCard, UserBubble } from './ChatCards';

/** The server refuses longer messages (400); it counts characters, not UTF-16 units. */
const MAX_MESSAGE = 4000;
const chars = (s: string) => Array.from(s).length;

const suggestions: { label: string; send: boolean }[] = [
  { label: 'List my sites', send: true },
  { label: 'Back up every site', send: true },
  { label: 'Purge the cache of …', send: false },
];

/** failureText says what went wrong, 429 included. */
export function failureText(e: unknown): string {
  if (e instanceof RateLimited) {
    return e.retryAfter > 0 ? `Slow down, try again in ${e.retryAfter} s.` : 'Slow down, try again in a moment.';
  }
  return errorText(e);
}

type ProposalItem = Extract<Item, { kind: 'proposal' }>;

export default function ChatPanel({ onClose }: { onClose: () => void }) {
  const [state, dispatch] = useReducer(reduce, undefined, () => load());
  const [busy, setBusy] = useState(false);
  const [draft, setDraft] = useState('');
  const [info, setInfo] = useState<AssistantInfo | null>(null);
  const [infoErr, setInfoErr] = useState('');
  const input = useRef<HTMLTextAreaElement>(null);
  const log = useRef<HTMLDivElement>(null);
  const abort = useRef<AbortController | null>(null);
  // The latest conversation id, for calls started from older renders.
  const conv = useRef(state.conversation);
  conv.current = state.conversation;

  // After sign-out nothing of this user's conversation is kept or shown.
  const signedOut = useRef(false);
  useEffect(() => {
    if (!signedOut.current) save(state);
  }, [state]);
  useEffect(() => {
    const onSignOut = () => {
      signedOut.current = true;
      abort.current?.abort();
      abort.current = null;
      conv.current = '';
      setBusy(false);
      setDraft('');
      dispatch({ type: 'reset' });
    };
    window.addEventListener(SIGNED_OUT, onSignOut);
    return () => window.removeEventListener(SIGNED_OUT, onSignOut);
  }, []);

  useEffect(() => {
    let stop = false;
    getAssistant().then(
      (i) => !stop && setInfo(i),
      (e) => !stop && setInfoErr(errorText(e)),
    );
    input.current?.focus();
    return () => {
      stop = true;
      abort.current?.abort();
    };
  }, []);

  // Follow the conversation as it grows.
  useEffect(() => {
    const el = log.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [state.items]);

  /**
   * stream runs one event stream into the log. It returns how many tool
   * results arrived, or throws what the server refused with.
   */
  const stream = useCallback(async (path: string, body: unknown): Promise<number> => {
    const ctl = new AbortController();
    abort.current = ctl;
    setBusy(true);
    const calls = new Map<string, Record<string, unknown>>();
    let results = 0;
    try {
      await postStream(
        path,
        body,
        (ev) => {
          if (ctl.signal.aborted) return;
          if (ev.type === 'conversation') conv.current = ev.id;
          if (ev.type === 'tool_call') calls.set(ev.id, ev.args ?? {});
          dispatch({ type: 'event', ev });
          if (ev.type === 'tool_result') {
            results++;
            const ok = !ev.error && (ev.status === undefined || ev.status < 400);
            if (ok && isWrite(ev.tool)) announceChange({ tool: ev.tool, args: calls.get(ev.id) ?? {} });
          }
        },
        ctl.signal,
      );
      return results;
    } catch (e) {
      if (ctl.signal.aborted) return results;
      throw e;
    } finally {
      if (abort.current === ctl) {
        abort.current = null;
        dispatch({ type: 'end' });
        setBusy(false);
        // Back to the composer (a timer: the textarea is enabled again first).
        setTimeout(() => input.current?.focus(), 0);
      }
    }
  }, []);

  async function send(text: string) {
    text = text.trim();
    if (!text || busy) return;
    const n = chars(text);
    if (n > MAX_MESSAGE) {
      dispatch({ type: 'failure', message: `That message is too long: ${n} characters, at most ${MAX_MESSAGE}.` });
      return;
    }
    dispatch({ type: 'user', text });
    setDraft('');
    const had = conv.current;
    try {
      await stream('/v1/assistant/chat', { conversation: had, message: text });
    } catch (e) {
      // The server forgot the conversation (restart, expiry): start anew once.
      if (e instanceof APIError && e.status === 404 && had) {
        dispatch({ type: 'forget' });
        conv.current = '';
        try {
          await stream('/v1/assistant/chat', { conversation: '', message: text });
          return;
        } catch (e2) {
          e = e2;
        }
      }
      dispatch({ type: 'failure', message: failureText(e) });
    }
  }

  async function confirm(p: ProposalItem) {
    dispatch({ type: 'proposal', id: p.id, state: 'confirming' });
    try {
      const results = await stream('/v1/assistant/confirm', { conversation: conv.current, proposal: p.id });
      dispatch({ type: 'proposal', id: p.id, state: 'confirmed' });
      if (results === 0) announceChange({ tool: p.tool, args: p.args });
    } catch (e) {
      dispatch({ type: 'proposal', id: p.id, state: 'failed', error: failureText(e) });
    }
  }

  async function cancel(p: ProposalItem) {
    dispatch({ type: 'proposal', id: p.id, state: 'cancelling' });
    try {
      await cancelProposal(conv.current, p.id);
      dispatch({ type: 'proposal', id: p.id, state: 'cancelled' });
    } catch (e) {
      dispatch({ type: 'proposal', id: p.id, state: 'failed', error: failureText(e) });
    }
    input.current?.focus();
  }

  function restart() {
    abort.current?.abort();
    abort.current = null;
    setBusy(false);
    dispatch({ type: 'reset' });
    conv.current = '';
    setDraft('');
    input.current?.focus();
  }

  function submit(e: FormEvent) {
    e.preventDefault();
    void send(draft);
  }

  function onKey(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void send(draft);
    }
  }

  function suggest(s: { label: string; send: boolean }) {
    if (s.send) {
      void send(s.label);
      return;
    }
    const text = s.label.replace(/…$/, '');
    setDraft(text);
    setTimeout(() => {
      const el = input.current;
      if (!el) return;
      el.focus();
      el.setSelectionRange(text.length, text.length);
    }, 0);
  }

  const model = info ? [info.provider, info.model].filter(Boolean).join(' · ') : '';

  return (
    <Stack gap="xs" h="100%" style={{ minHeight: 0 }} data-testid="chat-panel">
      <Group justify="space-between" wrap="nowrap" gap="xs">
        <Stack gap={0} style={{ minWidth: 0 }}>
          <Title order={2} size="h4">
            Assistant
          </Title>
          {model && (
            <Text size="xs" c="dimmed" truncate="end" title="Model provider" data-testid="assistant-model">
              {model}
            </Text>
          )}
        </Stack>
        <Group gap={4} wrap="nowrap">
          <Button variant="subtle" size="xs" onClick={restart} disabled={state.items.length === 0 && !busy}>
            New conversation
          </Button>
          <Button variant="subtle" size="xs" onClick={onClose}>
            Close
          </Button>
        </Group>
      </Group>

      {infoErr && (
        <Alert color="red" role="alert" p="xs" variant="light" title="The assistant is unavailable">
          <Text size="sm">{infoErr}</Text>
        </Alert>
      )}

      <Stack
        ref={log}
        gap="xs"
        role="log"
        aria-live="polite"
        aria-label="Conversation with the assistant"
        aria-busy={busy}
        tabIndex={0}
        style={{ flex: 1, minHeight: 0, overflowY: 'auto', padding: 2 }}
      >
        {state.items.length === 0 && (
          <Stack gap="xs" data-testid="chat-suggestions">
            <Text size="sm" c="dimmed">
              Ask in plain words; actions that delete or interrupt wait for your confirmation. For example:
            </Text>
            {suggestions.map((s) => (
              <Button key={s.label} variant="light" size="xs" justify="flex-start" onClick={() => suggest(s)} disabled={busy}>
                {s.label}
              </Button>
            ))}
          </Stack>
        )}
        {state.items.map((it) => {
          switch (it.kind) {
            case 'user':
              return <UserBubble key={it.key} text={it.text} />;
            case 'assistant':
              return <AssistantBubble key={it.key} text={it.text} />;
            case 'tool':
              return <ToolCard key={it.key} item={it} />;
            case 'proposal':
              return <ProposalCard key={it.key} item={it} busy={busy} onConfirm={() => void confirm(it)} onCancel={() => void cancel(it)} />;
            case 'error':
              return <ErrorNote key={it.key} message={it.message} />;
          }
        })}
      </Stack>

      {busy && (
        <Group gap="xs" aria-hidden>
          <Loader size="xs" type="dots" />
          <Text size="xs" c="dimmed">
            The assistant is working…
          </Text>
        </Group>
      )}

      <form onSubmit={submit}>
        <Stack gap={6}>
          <Textarea
            ref={input}
            label="Message the assistant"
            description="Enter sends, Shift+Enter starts a new line."
            autosize
            minRows={2}
            maxRows={6}
            value={draft}
            onChange={(e) => setDraft(e.currentTarget.value)}
            onKeyDown={onKey}
            error={chars(draft) > MAX_MESSAGE ? `At most ${MAX_MESSAGE} characters (now ${chars(draft)}).` : undefined}
          />
          <Group justify="flex-end">
            <Button type="submit" disabled={busy || !draft.trim()}>
              Send
            </Button>
          </Group>
        </Stack>
      </form>
    </Stack>
  );
}
