import { Title } from '@mantine/core';

// TODO(issue 11): the Orgs page.
export default function Orgs() {
  return <Title order={2}>Orgs</Title>;
}
