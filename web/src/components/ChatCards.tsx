// The pieces of the assistant's conversation log: message bubbles, tool
// call cards (name, arguments, status, a collapsible result) and proposal
// cards that wait for the user's Confirm or Cancel.
import { Alert, Badge, Box, Button, Code, Group, Loader, Paper, Stack, Text } from '@mantine/core';
import type { Args, Item } from '../chat/conversation';

/** show renders a JSON value for people: strings as is, the rest as JSON. */
export function show(v: unknown, indent = 0): string {
  if (typeof v === 'string') return v;
  if (v === undefined) return '';
  const s = JSON.stringify(v, null, indent);
  return s.length > 20000 ? s.slice(0, 20000) + '\n… (cut)' : s;
}

function ArgList({ args }: { args: Args }) {
  const keys = Object.keys(args);
  if (keys.length === 0) {
    return (
      <Text size="xs" c="dimmed">
        no arguments
      </Text>
    );
  }
  return (
    <Box component="dl" m={0} style={{ display: 'grid', gridTemplateColumns: 'auto 1fr', columnGap: 8, fontSize: 'var(--mantine-font-size-xs)' }}>
      {keys.map((k) => (
        <Box key={k} style={{ display: 'contents' }}>
          <Text component="dt" size="xs" c="dimmed">
            {k}
          </Text>
          <Text component="dd" size="xs" m={0} ff="monospace" style={{ wordBreak: 'break-word' }}>
            {show(args[k])}
          </Text>
        </Box>
      ))}
    </Box>
  );
}

export function UserBubble({ text }: { text: string }) {
  return (
    <Paper
      p="xs"
      radius="md"
      ml="xl"
      style={{ alignSelf: 'flex-end', background: 'var(--mantine-primary-color-light)', whiteSpace: 'pre-wrap', wordBreak: 'break-word' }}
      data-testid="user-message"
    >
      <Text size="sm" span style={srOnly}>
        You:{' '}
      </Text>
      <Text size="sm" span>
        {text}
      </Text>
    </Paper>
  );
}

const srOnly = { position: 'absolute', width: 1, height: 1, overflow: 'hidden', clip: 'rect(0 0 0 0)', whiteSpace: 'nowrap' } as const;

export function AssistantBubble({ text }: { text: string }) {
  return (
    <Paper
      p="xs"
      radius="md"
      mr="xl"
      withBorder
      style={{ alignSelf: 'flex-start', whiteSpace: 'pre-wrap', wordBreak: 'break-word' }}
      data-testid="assistant-message"
    >
      <Text size="sm" span style={srOnly}>
        Assistant:{' '}
      </Text>
      <Text size="sm" span>
        {text}
      </Text>
    </Paper>
  );
}

type ToolItem = Extract<Item, { kind: 'tool' }>;

export function ToolCard({ item }: { item: ToolItem }) {
  const failed = !!item.error || (item.status !== undefined && item.status >= 400);
  return (
    <Paper withBorder p="xs" radius="md" data-testid="tool-card" aria-label={`Tool ${item.tool}`} role="group">
      <Stack gap={4}>
        <Group justify="space-between" wrap="nowrap" gap="xs">
          <Text size="sm" fw={600} ff="monospace">
            {item.tool}
          </Text>
          {!item.done ? (
            <Group gap={4} wrap="nowrap">
              <Loader size="xs" aria-hidden />
              <Text size="xs" c="dimmed">
                running…
              </Text>
            </Group>
          ) : (
            <Badge color={failed ? 'red' : 'green'} variant="light" data-testid="tool-status">
              {failed ? 'failed' : 'done'}
              {item.status !== undefined ? ` · ${item.status}` : ''}
            </Badge>
          )}
        </Group>
        <ArgList args={item.args} />
        {item.error && (
          <Text size="xs" c="red.8">
            {item.error}
          </Text>
        )}
        {item.done && item.result !== undefined && item.result !== null && (
          <details>
            <summary style={{ cursor: 'pointer', fontSize: 'var(--mantine-font-size-xs)' }}>Result</summary>
            <Code block fz="xs" mt={4} style={{ maxHeight: 240, overflow: 'auto' }}>
              {show(item.result, 2)}
            </Code>
          </details>
        )}
      </Stack>
    </Paper>
  );
}

type ProposalItem = Extract<Item, { kind: 'proposal' }>;

const stateText: Record<ProposalItem['state'], string> = {
  open: 'Needs your confirmation',
  confirming: 'Running…',
  confirmed: 'Confirmed',
  cancelling: 'Cancelling…',
  cancelled: 'Cancelled',
  failed: 'Failed',
};

export function ProposalCard({
  item,
  busy,
  onConfirm,
  onCancel,
}: {
  item: ProposalItem;
  /** busy: another stream runs, the buttons wait. */
  busy: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const open = item.state === 'open' || item.state === 'confirming' || item.state === 'cancelling';
  return (
    <Paper
      withBorder
      p="xs"
      radius="md"
      data-testid="proposal-card"
      role="group"
      aria-label={`Proposal: ${item.summary}`}
      style={{ borderColor: open ? 'var(--mantine-color-orange-6)' : undefined }}
    >
      <Stack gap={6}>
        <Group justify="space-between" wrap="nowrap" gap="xs" align="flex-start">
          <Text size="sm" fw={600}>
            {item.summary}
          </Text>
          <Badge
            variant="light"
            color={item.state === 'confirmed' ? 'green' : item.state === 'failed' ? 'red' : item.state === 'cancelled' ? 'gray' : 'orange'}
            style={{ flexShrink: 0 }}
            data-testid="proposal-state"
          >
            {stateText[item.state]}
          </Badge>
        </Group>
        <Text size="xs" ff="monospace">
          {item.tool}
        </Text>
        <ArgList args={item.args} />
        {item.error && (
          <Text size="xs" c="red.8" role="alert">
            {item.error}
          </Text>
        )}
        {open && (
          <Group gap="xs">
            <Button size="xs" color="red" onClick={onConfirm} loading={item.state === 'confirming'} disabled={busy || item.state === 'cancelling'}>
              Confirm
            </Button>
            <Button size="xs" variant="default" onClick={onCancel} loading={item.state === 'cancelling'} disabled={busy || item.state === 'confirming'}>
              Cancel
            </Button>
          </Group>
        )}
      </Stack>
    </Paper>
  );
}

export function ErrorNote({ message }: { message: string }) {
  return (
    <Alert color="red" role="alert" p="xs" variant="light">
      <Text size="sm">{message}</Text>
    </Alert>
  );
}
