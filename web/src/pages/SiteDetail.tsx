import { Title } from '@mantine/core';

// TODO(issue 11): the SiteDetail page.
export default function SiteDetail() {
  return <Title order={2}>SiteDetail</Title>;
}
