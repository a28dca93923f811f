// Password reset: ask for a link (/reset-password), then set a new
// password with the link's secret (/reset-password#<secret>; the API's
// mail currently links ?token=<secret>, which is accepted too and removed
// from the address bar at once).
import { Alert, Anchor, Button, Center, Paper, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { api, errorText, must } from '../api/client';
import { forgetSecret, takeFragmentSecret } from '../components/AdminSecret';
import { useSession } from '../session';
import { useDocumentTitle } from '../title';

const KEY = 'aipress.reset';

/** takeResetSecret reads the secret of the fragment, else of ?token= (then dropped from the URL). */
function takeResetSecret(): string {
  const q = new URLSearchParams(window.location.search);
  const t = q.get('token');
  if (t && !window.location.hash) {
    q.delete('token');
    const rest = q.toString();
    window.history.replaceState(window.history.state, '', window.location.pathname + (rest ? `?${rest}` : '') + '#' + encodeURIComponent(t));
  }
  return takeFragmentSecret(KEY);
}

export default function ResetPassword() {
  const s = useSession();
  useDocumentTitle('Reset password');
  const [token] = useState(takeResetSecret);
  const product = s.branding.product_name || 'AIPress';
  return (
    <Center mih="100vh" p="md">
      <Paper withBorder p="xl" w={400} maw="100%" component="main">
        <Stack>
          <Title order={2}>Reset your {product} password</Title>
          {token ? <SetPassword token={token} /> : <RequestLink />}
        </Stack>
      </Paper>
    </Center>
  );
}

function RequestLink() {
  const [email, setEmail] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const [sent, setSent] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setErr('');
    try {
      await must(api.POST('/v1/auth/password-reset', { body: { email } }));
      setSent(true);
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  if (sent)
    return (
      <Paper withBorder p="md" role="status">
        <Text fw={600}>Check your mail</Text>
        <Text size="sm">If {email} has an account, a link to choose a new password is on its way. It works once, within an hour.</Text>
      </Paper>
    );
  return (
    <form onSubmit={submit} aria-label="Request a reset link">
      <Stack>
        {err && (
          <Alert color="red" role="alert" title="Could not send the link">
            {err}
          </Alert>
        )}
        <Text size="sm">Enter your account's e-mail address; we send it a link to choose a new password.</Text>
        <TextInput label="E-mail" type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.currentTarget.value)} />
        <Button type="submit" loading={busy}>
          Send reset link
        </Button>
        <Anchor href="/signin" size="sm">
          Back to sign-in
        </Anchor>
      </Stack>
    </form>
  );
}

function SetPassword({ token }: { token: string }) {
  const [pw, setPw] = useState('');
  const [again, setAgain] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const [done, setDone] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (pw !== again) {
      setErr('The two passwords differ.');
      return;
    }
    setBusy(true);
    setErr('');
    try {
      await must(api.POST('/v1/auth/password-reset/confirm', { body: { token, new_password: pw } }));
      forgetSecret(KEY);
      setDone(true);
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  if (done)
    return (
      <Stack>
        <Paper withBorder p="md" role="status">
          <Text fw={600}>Password changed</Text>
          <Text size="sm">Your new password is set. Your other sign-ins have ended: sign in again.</Text>
        </Paper>
        <Button component="a" href="/signin">
          Sign in
        </Button>
      </Stack>
    );
  return (
    <form onSubmit={submit} aria-label="Choose a new password">
      <Stack>
        {err && (
          <Alert color="red" role="alert" title="Could not set the password">
            {err}
          </Alert>
        )}
        <PasswordInput
          label="New password"
          description="12 characters or more, not your e-mail address."
          autoComplete="new-password"
          required
          minLength={12}
          value={pw}
          onChange={(e) => setPw(e.currentTarget.value)}
        />
        <PasswordInput label="Repeat new password" autoComplete="new-password" required value={again} onChange={(e) => setAgain(e.currentTarget.value)} />
        <Button type="submit" loading={busy}>
          Set new password
        </Button>
        <Anchor href="/reset-password" size="sm" onClick={() => forgetSecret(KEY)}>
          Ask for a new link
        </Anchor>
      </Stack>
    </form>
  );
}
