import { Title } from '@mantine/core';

// TODO(issue 11): the Jobs page.
export default function Jobs() {
  return <Title order={2}>Jobs</Title>;
}
