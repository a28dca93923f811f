import { Title } from '@mantine/core';

// TODO(issue 11): the Audit page.
export default function Audit() {
  return <Title order={2}>Audit</Title>;
}
