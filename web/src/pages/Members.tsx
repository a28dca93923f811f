import { Title } from '@mantine/core';

// TODO(issue 11): the Members page.
export default function Members() {
  return <Title order={2}>Members</Title>;
}
