import { Title } from '@mantine/core';

// TODO(issue 11): the Tokens page.
export default function Tokens() {
  return <Title order={2}>Tokens</Title>;
}
