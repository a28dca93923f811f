import { Title } from '@mantine/core';

// TODO(issue 11): the AcceptInvite page.
export default function AcceptInvite() {
  return <Title order={2}>AcceptInvite</Title>;
}
