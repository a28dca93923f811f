import { Title } from '@mantine/core';

// TODO(issue 11): the ResetPassword page.
export default function ResetPassword() {
  return <Title order={2}>ResetPassword</Title>;
}
