import { Button, Group, Text } from '@mantine/core';

// TODO(issue 11): the assistant's chat panel.
export default function ChatPanel({ onClose }: { onClose: () => void }) {
  return (
    <Group justify="space-between">
      <Text fw={600}>Assistant</Text>
      <Button variant="subtle" onClick={onClose}>
        Close
      </Button>
    </Group>
  );
}
