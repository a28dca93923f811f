import { Title } from '@mantine/core';

// TODO(issue 11): the Sites page.
export default function Sites() {
  return <Title order={2}>Sites</Title>;
}
