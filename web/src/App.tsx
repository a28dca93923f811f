import { MantineProvider, Center, Loader } from '@mantine/core';
import { lazy, Suspense, type ComponentType } from 'react';
import { Redirect, Route, Switch } from 'wouter';
import { SessionProvider, useSession } from './session';
import { themeFor } from './theme';
import { Layout } from './components/Layout';
import { ErrorBoundary } from './components/ErrorBoundary';
import SignIn from './pages/SignIn';

// Pages load on demand so the first load stays small.
const page = (f: () => Promise<{ default: ComponentType }>) => lazy(f);
const Sites = page(() => import('./pages/Sites'));
const CreateSite = page(() => import('./pages/CreateSite'));
const SiteDetail = page(() => import('./pages/SiteDetail'));
const Jobs = page(() => import('./pages/Jobs'));
const Audit = page(() => import('./pages/Audit'));
const Members = page(() => import('./pages/Members'));
const Tokens = page(() => import('./pages/Tokens'));
const Plan = page(() => import('./pages/Plan'));
const Shards = page(() => import('./pages/Shards'));
const Orgs = page(() => import('./pages/Orgs'));
const AcceptInvite = page(() => import('./pages/AcceptInvite'));
const ResetPassword = page(() => import('./pages/ResetPassword'));
const Device = page(() => import('./pages/Device'));

const loading = (
  <Center h="60vh">
    <Loader aria-label="Loading" />
  </Center>
);

/** Routes: the public pages, then the signed-in ones inside the layout. */
function Routes() {
  const s = useSession();
  return (
    <MantineProvider theme={themeFor(s.branding)} defaultColorScheme="auto">
      <Suspense fallback={loading}>
        <Switch>
          <Route path="/signin" component={SignIn} />
          <Route path="/invite" component={AcceptInvite} />
          <Route path="/reset-password" component={ResetPassword} />
          <Route>
            {s.loading && !s.me ? (
              loading
            ) : !s.me ? (
              <Redirect to={`/signin?return_to=${encodeURIComponent(location.pathname + location.search)}`} />
            ) : (
              <Layout>
                <Suspense fallback={loading}>
                  <Switch>
                    <Route path="/">
                      <Redirect to="/sites" />
                    </Route>
                    <Route path="/sites" component={Sites} />
                    <Route path="/sites/new" component={CreateSite} />
                    <Route path="/sites/:name" component={SiteDetail} />
                    <Route path="/sites/:name/:tab" component={SiteDetail} />
                    <Route path="/jobs" component={Jobs} />
                    <Route path="/jobs/:id" component={Jobs} />
                    <Route path="/audit" component={Audit} />
                    <Route path="/members" component={Members} />
                    <Route path="/tokens" component={Tokens} />
                    <Route path="/plan" component={Plan} />
                    <Route path="/device" component={Device} />
                    <Route path="/admin/shards" component={Shards} />
                    <Route path="/admin/orgs" component={Orgs} />
                    <Route>
                      <p>This page does not exist.</p>
                    </Route>
                  </Switch>
                </Suspense>
              </Layout>
            )}
          </Route>
        </Switch>
      </Suspense>
    </MantineProvider>
  );
}

export function App() {
  return (
    <ErrorBoundary>
      <SessionProvider>
        <Routes />
      </SessionProvider>
    </ErrorBoundary>
  );
}
