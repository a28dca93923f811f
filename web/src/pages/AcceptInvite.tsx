// Accepting an invitation (/invite#<secret>). The secret is in the URL
// fragment, which the browser never sends to a server. An address without
// an account makes one here (name and password); an address with one joins
// only while signed in as that user (docs/accounts.md, Invitations).
import { Alert, Anchor, Button, Center, Divider, Loader, Paper, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { useLocation } from 'wouter';
import { APIError, errorText, raw } from '../api/client';
import { forgetSecret, takeFragmentSecret } from '../components/AdminSecret';
import { useSession } from '../session';
import { useDocumentTitle } from '../title';

const KEY = 'aipress.invite';

interface Accepted {
  org?: string;
  role?: string;
  redirect?: string;
  signed_in?: boolean;
}

export default function AcceptInvite() {
  const s = useSession();
  useDocumentTitle('Accept invitation');
  const [, navigate] = useLocation();
  const [token] = useState(() => takeFragmentSecret(KEY));
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  // needsSignIn: the address has an account; needsAccount: it has none.
  const [needsSignIn, setNeedsSignIn] = useState(false);
  const [needsAccount, setNeedsAccount] = useState(false);
  const product = s.branding.product_name || 'AIPress';

  async function accept(body: Record<string, unknown>) {
    setBusy(true);
    setErr('');
    try {
      const r = await raw<Accepted>('POST', '/v1/invites/accept', { token, ...body });
      if (r.redirect) {
        window.location.assign(r.redirect);
        return;
      }
      forgetSecret(KEY);
      await s.refresh();
      if (r.org) s.setOrg(r.org);
      navigate('/sites');
    } catch (e) {
      setErr(errorText(e));
      if (e instanceof APIError && e.status === 401) setNeedsSignIn(true);
      if (e instanceof APIError && e.status === 400 && /has no account/.test(e.message)) setNeedsAccount(true);
    } finally {
      setBusy(false);
    }
  }

  function submit(e: FormEvent) {
    e.preventDefault();
    void accept({ password, ...(name.trim() ? { name: name.trim() } : {}) });
  }

  async function signInFirst() {
    // The secret stays in sessionStorage; /signin comes back here.
    if (s.me) await s.signOut();
    navigate('/signin?return_to=/invite');
  }

  let body;
  if (!token) {
    body = (
      <Alert color="red" role="alert" title="No invitation">
        This link has no invitation in it. Open the link from the invitation e-mail again, or ask for a new invitation.
      </Alert>
    );
  } else if (s.loading && !s.me) {
    body = <Loader aria-label="Loading" />;
  } else {
    body = (
      <Stack>
        {err && (
          <Alert color="red" role="alert" title="Could not accept the invitation">
            {err}
          </Alert>
        )}
        {needsSignIn && (
          <Stack gap="xs">
            <Text size="sm">
              The invited address already has an account. Sign in as that user; you come back here and accept the invitation
              while signed in.
            </Text>
            <Button variant="light" onClick={() => void signInFirst()}>
              {s.me ? 'Sign out and sign in as the invited user' : 'Sign in to accept'}
            </Button>
          </Stack>
        )}
        {s.me && !needsAccount ? (
          <>
            <Text>
              You are signed in as <b>{s.me.user?.email ?? s.me.name}</b>. Accept the invitation to join its organisation with
              this account.
            </Text>
            <Button loading={busy} onClick={() => void accept({})}>
              Accept invitation
            </Button>
          </>
        ) : (
          <form onSubmit={submit} aria-label="Create your account">
            <Stack>
              <Text size="sm">New here? Choose your name and a password (at least 12 characters) to create your account.</Text>
              <TextInput label="Name" autoComplete="name" value={name} onChange={(e) => setName(e.currentTarget.value)} />
              <PasswordInput
                label="Password"
                autoComplete="new-password"
                required
                minLength={12}
                value={password}
                onChange={(e) => setPassword(e.currentTarget.value)}
              />
              <Button type="submit" loading={busy}>
                Create account and join
              </Button>
            </Stack>
          </form>
        )}
        {!s.me && !needsSignIn && (
          <Text size="sm">
            Already have an account?{' '}
            <Anchor component="button" type="button" onClick={() => void signInFirst()}>
              Sign in first
            </Anchor>
            , then accept.
          </Text>
        )}
        <Divider label="or" />
        <Button variant="default" onClick={() => void accept({ oidc: true })} disabled={busy}>
          Accept with single sign-on
        </Button>
      </Stack>
    );
  }

  return (
    <Center mih="100vh" p="md">
      <Paper withBorder p="xl" w={420} maw="100%" component="main">
        <Stack>
          <Title order={2}>Join {product}</Title>
          {body}
        </Stack>
      </Paper>
    </Center>
  );
}
