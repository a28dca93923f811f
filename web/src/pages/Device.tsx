import { Title } from '@mantine/core';

// TODO(issue 11): the Device page.
export default function Device() {
  return <Title order={2}>Device</Title>;
}
