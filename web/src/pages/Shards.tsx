import { Title } from '@mantine/core';

// TODO(issue 11): the Shards page.
export default function Shards() {
  return <Title order={2}>Shards</Title>;
}
