import { act, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { onAssistantChange, type ChangedDetail } from '../chat/changed';
import type { ChatEvent } from '../chat/stream';
import { json, mockAPI, renderPage, route } from '../test/render';
import ChatPanel from './ChatPanel';

const enc = new TextEncoder();
const frame = (e: ChatEvent) => `data: ${JSON.stringify(e)}\n\n`;

/** sse answers with a whole event stream at once. */
function sse(...events: ChatEvent[]): Response {
  return new Response(events.map(frame).join(''), { headers: { 'Content-Type': 'text/event-stream' } });
}

/** live is an event stream the test writes to while the panel reads it. */
function live() {
  let ctl!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (ctl = c) });
  return {
    response: new Response(body, { headers: { 'Content-Type': 'text/event-stream' } }),
    write: (s: string) => act(async () => ctl.enqueue(enc.encode(s))),
    close: () => act(async () => ctl.close()),
  };
}

const info = route('GET', '/v1/assistant', () => json({ provider: 'offline', model: '', confirm_required: true, rate_limit_per_minute: 20 }));

/** changes records the 'aipress:changed' events. */
function changes() {
  const got: ChangedDetail[] = [];
  cleanups.push(onAssistantChange((d) => got.push(d)));
  return got;
}
const cleanups: (() => void)[] = [];

const box = () => screen.getByLabelText('Message the assistant');

async function say(text: string) {
  await userEvent.type(box(), text);
  await userEvent.click(screen.getByRole('button', { name: 'Send' }));
}

beforeEach(() => sessionStorage.clear());
afterEach(() => {
  vi.unstubAllGlobals();
  cleanups.splice(0).forEach((f) => f());
});

describe('ChatPanel', () => {
  it('shows the provider and renders streamed text as it arrives', async () => {
    const s = live();
    const calls = mockAPI(info, route('POST', '/v1/assistant/chat', () => s.response));
    renderPage(<ChatPanel onClose={() => {}} />);
    expect(await screen.findByTestId('assistant-model')).toHaveTextContent('offline');
    await say('hello');
    expect(JSON.parse(calls.find((c) => c.path === '/v1/assistant/chat')!.body)).toEqual({ conversation: '', message: 'hello' });
    expect(screen.getByTestId('user-message')).toHaveTextContent('hello');
    expect(screen.getByRole('button', { name: 'Send' })).toBeDisabled();

    await s.write(frame({ type: 'conversation', id: 'cnv-1' }) + 'data: {"type":"text","text":"Hel');
    await s.write('lo"}\n\n');
    await waitFor(() => expect(screen.getByTestId('assistant-message')).toHaveTextContent('Hello'));
    expect(screen.getByTestId('assistant-message')).not.toHaveTextContent('there');

    await s.write(frame({ type: 'text', text: ' there' }));
    await waitFor(() => expect(screen.getByTestId('assistant-message')).toHaveTextContent('Hello there'));
    await s.write(frame({ type: 'done' }));
    await s.close();

    await waitFor(() => expect(box()).toHaveFocus());
    expect(screen.getAllByTestId('assistant-message')).toHaveLength(1);
    expect(screen.getByRole('log')).toHaveAttribute('aria-live', 'polite');
  });

  it('shows an error when the answer is not an event stream', async () => {
    mockAPI(info, route('POST', '/v1/assistant/chat', () => new Response('<html>proxy login</html>', { headers: { 'Content-Type': 'text/html' } })));
    renderPage(<ChatPanel onClose={() => {}} />);
    await say('hello');
    expect(await screen.findByRole('alert')).toHaveTextContent('not an event stream');
    expect(screen.queryByTestId('assistant-message')).toBeNull();
  });

  it('shows a tool call card with its status and result, and announces writes', async () => {
    const got = changes();
    mockAPI(
      info,
      route('POST', '/v1/assistant/chat', () =>
        sse(
          { type: 'conversation', id: 'cnv-1' },
          { type: 'tool_call', id: 'call-1', tool: 'listSites', args: {} },
          { type: 'tool_result', id: 'call-1', tool: 'listSites', status: 200, result: { items: [{ name: 'blog.localhost' }] } },
          { type: 'tool_call', id: 'call-2', tool: 'createBackup', args: { name: 'blog.localhost' } },
          { type: 'tool_result', id: 'call-2', tool: 'createBackup', status: 202, result: { job: 'job-42' } },
          { type: 'text', text: 'Backup started.' },
          { type: 'done' },
        ),
      ),
    );
    renderPage(<ChatPanel onClose={() => {}} />);
    await say('back up blog');
    const cards = await screen.findAllByTestId('tool-card');
    expect(cards).toHaveLength(2);
    const backup = cards[1];
    expect(backup).toHaveTextContent('createBackup');
    expect(backup).toHaveTextContent('blog.localhost');
    expect(within(backup).getByTestId('tool-status')).toHaveTextContent('done · 202');
    const result = within(backup).getByText('Result');
    expect(within(backup).getByText(/job-42/)).not.toBeVisible();
    await userEvent.click(result);
    expect(within(backup).getByText(/job-42/)).toBeVisible();
    expect(screen.getByTestId('assistant-message')).toHaveTextContent('Backup started.');
    // Only the write is announced.
    expect(got).toEqual([{ tool: 'createBackup', args: { name: 'blog.localhost' } }]);
  });

  it('shows a failed tool call', async () => {
    const got = changes();
    mockAPI(
      info,
      route('POST', '/v1/assistant/chat', () =>
        sse(
          { type: 'conversation', id: 'cnv-1' },
          { type: 'tool_call', id: 'call-1', tool: 'purgeSite', args: { name: 'nope.localhost' } },
          { type: 'tool_result', id: 'call-1', tool: 'purgeSite', status: 404, error: 'site not found' },
          { type: 'error', message: 'I could not do that.' },
          { type: 'done' },
        ),
      ),
    );
    renderPage(<ChatPanel onClose={() => {}} />);
    await say('purge nope');
    const card = await screen.findByTestId('tool-card');
    await waitFor(() => expect(within(card).getByTestId('tool-status')).toHaveTextContent('failed · 404'));
    expect(card).toHaveTextContent('site not found');
    expect(screen.getByRole('alert')).toHaveTextContent('I could not do that.');
    expect(got).toEqual([]);
  });

  it('confirms a proposal: posts conversation and proposal, renders the result', async () => {
    const got = changes();
    const calls = mockAPI(
      info,
      route('POST', '/v1/assistant/chat', () =>
        sse(
          { type: 'conversation', id: 'cnv-7' },
          { type: 'proposal', id: 'prp-1', tool: 'deleteSite', args: { name: 'blog.localhost' }, summary: 'Delete site blog.localhost' },
          { type: 'text', text: 'Please confirm.' },
          { type: 'done' },
        ),
      ),
      route('POST', '/v1/assistant/confirm', () =>
        sse(
          { type: 'tool_call', id: 'call-1', tool: 'deleteSite', args: { name: 'blog.localhost' } },
          { type: 'tool_result', id: 'call-1', tool: 'deleteSite', status: 202, result: { job: 'job-9' } },
          { type: 'text', text: 'Deleting blog.localhost.' },
          { type: 'done' },
        ),
      ),
    );
    renderPage(<ChatPanel onClose={() => {}} />);
    await say('delete blog.localhost');
    const card = await screen.findByTestId('proposal-card');
    expect(card).toHaveTextContent('Delete site blog.localhost');
    expect(card).toHaveTextContent('deleteSite');
    expect(screen.queryByTestId('tool-card')).toBeNull();

    await userEvent.click(within(card).getByRole('button', { name: 'Confirm' }));
    await waitFor(() => expect(within(card).getByTestId('proposal-state')).toHaveTextContent('Confirmed'));
    const confirm = calls.filter((c) => c.path === '/v1/assistant/confirm');
    expect(confirm).toHaveLength(1);
    expect(JSON.parse(confirm[0].body)).toEqual({ conversation: 'cnv-7', proposal: 'prp-1' });
    expect(within(card).queryByRole('button', { name: 'Confirm' })).toBeNull();
    expect(await screen.findByTestId('tool-card')).toHaveTextContent('done · 202');
    expect(screen.getByText('Deleting blog.localhost.')).toBeInTheDocument();
    expect(got).toEqual([{ tool: 'deleteSite', args: { name: 'blog.localhost' } }]);
  });

  it('shows why a confirmation was refused', async () => {
    mockAPI(
      info,
      route('POST', '/v1/assistant/chat', () =>
        sse({ type: 'conversation', id: 'cnv-7' }, { type: 'proposal', id: 'prp-1', tool: 'suspendSite', args: { name: 'b' }, summary: 'Suspend site b' }, { type: 'done' }),
      ),
      route('POST', '/v1/assistant/confirm', () => json({ error: { code: 'not_found', message: 'no such proposal' } }, 404)),
    );
    renderPage(<ChatPanel onClose={() => {}} />);
    await say('suspend b');
    const card = await screen.findByTestId('proposal-card');
    await userEvent.click(within(card).getByRole('button', { name: 'Confirm' }));
    expect(await within(card).findByRole('alert')).toHaveTextContent('no such proposal');
    expect(within(card).getByTestId('proposal-state')).toHaveTextContent('Failed');
  });

  it('cancels a proposal', async () => {
    const got = changes();
    const calls = mockAPI(
      info,
      route('POST', '/v1/assistant/chat', () =>
        sse({ type: 'conversation', id: 'cnv-7' }, { type: 'proposal', id: 'prp-2', tool: 'deleteSite', args: { name: 'b' }, summary: 'Delete site b' }, { type: 'done' }),
      ),
      route('POST', '/v1/assistant/cancel', () => new Response(null, { status: 204 })),
    );
    renderPage(<ChatPanel onClose={() => {}} />);
    await say('delete b');
    const card = await screen.findByTestId('proposal-card');
    await userEvent.click(within(card).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(within(card).getByTestId('proposal-state')).toHaveTextContent('Cancelled'));
    expect(within(card).queryByRole('button', { name: 'Confirm' })).toBeNull();
    const c = calls.filter((c) => c.path === '/v1/assistant/cancel');
    expect(JSON.parse(c[0].body)).toEqual({ conversation: 'cnv-7', proposal: 'prp-2' });
    expect(calls.some((c) => c.path === '/v1/assistant/confirm')).toBe(false);
    expect(got).toEqual([]);
  });

  it('asks to slow down on 429', async () => {
    mockAPI(
      info,
      route('POST', '/v1/assistant/chat', () =>
        json({ error: { code: 'rate_limited', message: 'too many requests' } }, 429),
      ),
    );
    // Retry-After on the 429.
    const f = globalThis.fetch;
    vi.stubGlobal('fetch', async (r: Request) => {
      const res = await f(r);
      if (res.status !== 429) return res;
      return new Response(await res.text(), { status: 429, headers: { 'Retry-After': '12', 'Content-Type': 'application/json' } });
    });
    renderPage(<ChatPanel onClose={() => {}} />);
    await say('list my sites');
    expect(await screen.findByRole('alert')).toHaveTextContent('Slow down, try again in 12 s.');
    expect(box()).toHaveValue('');
  });

  it("shows the server's message on a refused message", async () => {
    mockAPI(info, route('POST', '/v1/assistant/chat', () => json({ error: { code: 'invalid', message: 'message is empty' } }, 400)));
    renderPage(<ChatPanel onClose={() => {}} />);
    await say('x');
    expect(await screen.findByRole('alert')).toHaveTextContent('message is empty');
  });

  it('reuses the conversation id, keeps it over a reload, and forgets it on New conversation', async () => {
    let n = 0;
    const calls = mockAPI(
      info,
      route('POST', '/v1/assistant/chat', () => sse({ type: 'conversation', id: 'cnv-1' }, { type: 'text', text: `answer ${++n}` }, { type: 'done' })),
    );
    const first = renderPage(<ChatPanel onClose={() => {}} />);
    await say('one');
    await screen.findByText('answer 1');
    await say('two');
    await screen.findByText('answer 2');
    first.unmount();

    renderPage(<ChatPanel onClose={() => {}} />);
    expect(screen.getByText('answer 2')).toBeInTheDocument(); // the log survives
    await say('three');
    await screen.findByText('answer 3');
    const bodies = calls.filter((c) => c.path === '/v1/assistant/chat').map((c) => JSON.parse(c.body));
    expect(bodies.map((b) => b.conversation)).toEqual(['', 'cnv-1', 'cnv-1']);

    await userEvent.click(screen.getByRole('button', { name: 'New conversation' }));
    expect(screen.queryByText('answer 3')).toBeNull();
    expect(screen.getByRole('button', { name: 'List my sites' })).toBeInTheDocument();
    await say('four');
    await screen.findByText('answer 4');
    expect(JSON.parse(calls.filter((c) => c.path === '/v1/assistant/chat').at(-1)!.body).conversation).toBe('');
  });

  it('starts a new conversation when the server forgot the old one', async () => {
    sessionStorage.setItem('aipress.assistant', JSON.stringify({ conversation: 'cnv-old', items: [], seq: 0 }));
    const calls = mockAPI(
      info,
      route('POST', '/v1/assistant/chat', async (req) => {
        const b = JSON.parse(await req.text());
        if (b.conversation === 'cnv-old') return json({ error: { code: 'not_found', message: 'no such conversation' } }, 404);
        return sse({ type: 'conversation', id: 'cnv-new' }, { type: 'text', text: 'fresh' }, { type: 'done' });
      }),
    );
    renderPage(<ChatPanel onClose={() => {}} />);
    await say('hi');
    await screen.findByText('fresh');
    expect(calls.filter((c) => c.path === '/v1/assistant/chat').map((c) => JSON.parse(c.body).conversation)).toEqual(['cnv-old', '']);
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('sends on Enter, not on Shift+Enter, and from a suggestion', async () => {
    const calls = mockAPI(info, route('POST', '/v1/assistant/chat', () => sse({ type: 'conversation', id: 'cnv-1' }, { type: 'text', text: 'ok' }, { type: 'done' })));
    renderPage(<ChatPanel onClose={() => {}} />);
    await userEvent.click(screen.getByRole('button', { name: 'List my sites' }));
    await screen.findByText('ok');
    await waitFor(() => expect(box()).toHaveFocus());
    await userEvent.type(box(), 'line one{Shift>}{Enter}{/Shift}line two');
    expect(box()).toHaveValue('line one\nline two');
    await userEvent.type(box(), '{Enter}');
    await waitFor(() => expect(calls.filter((c) => c.path === '/v1/assistant/chat')).toHaveLength(2));
    const bodies = calls.filter((c) => c.path === '/v1/assistant/chat').map((c) => JSON.parse(c.body).message);
    expect(bodies).toEqual(['List my sites', 'line one\nline two']);
  });

  it('puts "Purge the cache of" in the box for the user to finish', async () => {
    const calls = mockAPI(info);
    renderPage(<ChatPanel onClose={() => {}} />);
    await userEvent.click(screen.getByRole('button', { name: 'Purge the cache of …' }));
    await waitFor(() => expect(box()).toHaveFocus());
    expect(box()).toHaveValue('Purge the cache of ');
    expect(calls.some((c) => c.method === 'POST')).toBe(false);
  });

  it('stops reading the stream when the panel closes', async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      start: (c) => c.enqueue(enc.encode(frame({ type: 'conversation', id: 'cnv-1' }) + frame({ type: 'text', text: 'thinking' }))),
      cancel: () => void (cancelled = true),
    });
    mockAPI(info, route('POST', '/v1/assistant/chat', () => new Response(body, { headers: { 'Content-Type': 'text/event-stream' } })));
    const r = renderPage(<ChatPanel onClose={() => {}} />);
    await say('hi');
    await screen.findByText('thinking');
    r.unmount();
    await waitFor(() => expect(cancelled).toBe(true));
    // The conversation survives for the next opening.
    expect(JSON.parse(sessionStorage.getItem('aipress.assistant')!).conversation).toBe('cnv-1');
  });

  it('refuses a message over 4000 characters without calling the server', async () => {
    const calls = mockAPI(info);
    renderPage(<ChatPanel onClose={() => {}} />);
    await userEvent.click(box());
    await userEvent.paste('é'.repeat(3999) + '😀'); // 4000 characters, 4001 UTF-16 units: allowed
    expect(screen.queryByText(/At most 4000 characters/)).toBeNull();
    await userEvent.paste('😀');
    expect(screen.getByText(/At most 4000 characters/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Send' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('at most 4000');
    expect(calls.some((c) => c.method === 'POST')).toBe(false);
  });

  it('says when the assistant is not configured', async () => {
    mockAPI(route('GET', '/v1/assistant', () => json({ error: { code: 'unimplemented', message: 'the assistant is not configured on this server' } }, 501)));
    renderPage(<ChatPanel onClose={() => {}} />);
    expect(await screen.findByRole('alert')).toHaveTextContent('the assistant is not configured on this server');
  });

  it('closes', async () => {
    mockAPI(info);
    const onClose = vi.fn();
    renderPage(<ChatPanel onClose={onClose} />);
    await userEvent.click(screen.getByRole('button', { name: 'Close' }));
    expect(onClose).toHaveBeenCalled();
  });
});

describe('ChatPanel in the layout', () => {
  it('opens from the header button with the focus in the message box', async () => {
    mockAPI(info, route('GET', /^\/v1\/orgs\//, () => json({ name: 'acme', branding: {} })));
    const { Layout } = await import('./Layout');
    renderPage(
      <Layout>
        <p>page</p>
      </Layout>,
    );
    expect(screen.queryByLabelText('Message the assistant')).toBeNull();
    await userEvent.click(screen.getByRole('button', { name: 'Assistant' }));
    await waitFor(() => expect(screen.getByLabelText('Message the assistant')).toHaveFocus());
    expect(await screen.findByTestId('assistant-model')).toHaveTextContent('offline');
    await userEvent.click(screen.getByRole('button', { name: 'Close' }));
    await waitFor(() => expect(screen.queryByLabelText('Message the assistant')).toBeNull());
  });
});
