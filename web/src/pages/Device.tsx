// Approving a CLI sign-in (`aipress login`, RFC 8628 device flow): the
// CLI prints a code and this page's address (/device?user_code=BCDF-GHJK;
// ?code= works too); approving gives that CLI a token with all of the
// signed-in user's rights.
import { Alert, Button, Paper, Stack, Text, TextInput, Title } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { useSearch } from 'wouter';
import { api, errorText, must } from '../api/client';
import { useSession } from '../session';

export default function Device() {
  const s = useSession();
  const params = new URLSearchParams(useSearch());
  const [code, setCode] = useState(() => (params.get('user_code') ?? params.get('code') ?? '').toUpperCase());
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const [done, setDone] = useState('');

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setErr('');
    try {
      const c = code.trim().toUpperCase();
      await must(api.POST('/v1/auth/device/approve', { body: { user_code: c } }));
      setDone(c);
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Stack maw={480}>
      <Title order={2}>Approve a CLI sign-in</Title>
      {done ? (
        <Paper withBorder p="md" role="status">
          <Text fw={600}>Sign-in {done} approved</Text>
          <Text size="sm">The command line is now signed in as {s.me?.user?.email ?? s.me?.name}. You can close this page.</Text>
        </Paper>
      ) : (
        <form onSubmit={submit} aria-label="Approve a CLI sign-in">
          <Stack>
            {err && (
              <Alert color="red" role="alert" title="Could not approve">
                {err}
              </Alert>
            )}
            <Text size="sm">
              Approve only a sign-in you started yourself with <code>aipress login</code>: the command line gets a token that may
              do everything you may, as <b>{s.me?.user?.email ?? s.me?.name}</b>. Check that the code matches the one it shows.
            </Text>
            <TextInput
              label="Code"
              placeholder="BCDF-GHJK"
              required
              autoComplete="off"
              value={code}
              onChange={(e) => setCode(e.currentTarget.value.toUpperCase())}
              styles={{ input: { fontFamily: 'monospace', letterSpacing: '0.1em' } }}
            />
            <Button type="submit" loading={busy}>
              Approve sign-in
            </Button>
          </Stack>
        </form>
      )}
    </Stack>
  );
}
