// Sign-in: e-mail and password, or the platform's OpenID Connect provider.
import { Alert, Anchor, Button, Center, Divider, Paper, PasswordInput, Stack, TextInput, Title } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { useLocation, useSearch } from 'wouter';
import { api, errorText, must } from '../api/client';
import { useSession } from '../session';
import { useDocumentTitle } from '../title';

/**
 * safeReturn keeps return_to a local path: no //host, scheme, backslash
 * or control character anywhere (browsers drop tabs and newlines and read
 * "\\" as "/", so "/\t/evil.example" would leave the site), and it must
 * resolve to this origin.
 */
export function safeReturn(v: string | null): string {
  const fallback = '/sites';
  // eslint-disable-next-line no-control-regex
  if (!v || !v.startsWith('/') || v.startsWith('//') || /[\u0000-\u001f\u007f\\]/.test(v)) return fallback;
  try {
    const u = new URL(v, location.origin);
    if (u.origin !== location.origin || !u.pathname.startsWith('/') || u.pathname.startsWith('//')) return fallback;
  } catch {
    return fallback;
  }
  return v;
}

/**
 * signInErrors are the fixed messages for ?error= codes. The query string
 * is anyone's to write, so its text is never shown as such: a link must
 * not be able to put words in the portal's mouth. (The API answers a
 * failed OIDC callback with a JSON error rather than a redirect; these
 * cover its error codes and the OAuth ones a provider may return.)
 */
const signInErrors: Record<string, string> = {
  unauthenticated: 'The identity provider did not sign you in.',
  access_denied: 'The identity provider did not sign you in.',
  forbidden: 'This account may not sign in. Ask an organisation owner for an invitation.',
  invalid_argument: 'The sign-in expired or was interrupted. Start again.',
  expired: 'The sign-in expired. Start again.',
  internal: 'The identity provider is unavailable. Try again later.',
  temporarily_unavailable: 'The identity provider is unavailable. Try again later.',
};

/** signInError maps ?error= to a fixed message ('' for none). */
export function signInError(code: string | null): string {
  if (!code) return '';
  return Object.hasOwn(signInErrors, code) ? signInErrors[code] : 'Sign-in did not complete. Try again.';
}

export default function SignIn() {
  const s = useSession();
  const [, navigate] = useLocation();
  const params = new URLSearchParams(useSearch());
  const returnTo = safeReturn(params.get('return_to'));
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState(() => signInError(params.get('error')));
  const product = s.branding.product_name || 'AIPress';
  useDocumentTitle('Sign in');

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setErr('');
    try {
      await must(api.POST('/v1/auth/login', { body: { email, password } }));
      await s.refresh();
      navigate(returnTo);
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Center mih="100vh" p="md">
      <Paper withBorder p="xl" w={380} component="main">
        <form onSubmit={submit} aria-label="Sign in">
          <Stack>
            <Title order={1} size="h2">
              Sign in to {product}
            </Title>
            {err && (
              <Alert color="red" role="alert" title="Could not sign in">
                {err}
              </Alert>
            )}
            <TextInput label="E-mail" type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.currentTarget.value)} />
            <PasswordInput label="Password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.currentTarget.value)} />
            <Button type="submit" loading={busy}>
              Sign in
            </Button>
            <Divider label="or" />
            <Button component="a" variant="default" href={`/v1/auth/oidc/start?return_to=${encodeURIComponent(returnTo)}`}>
              Sign in with single sign-on
            </Button>
            <Anchor href="/reset-password" size="sm">
              Forgot your password?
            </Anchor>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}
