import { Title } from '@mantine/core';

// TODO(issue 11): the Plan page.
export default function Plan() {
  return <Title order={2}>Plan</Title>;
}
