import { Title } from '@mantine/core';

// TODO(issue 11): the CreateSite page.
export default function CreateSite() {
  return <Title order={2}>CreateSite</Title>;
}
