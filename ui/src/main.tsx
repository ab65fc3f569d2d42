// berth's web UI: the shell (top bar, session, the control namespace) and the routes.
import { render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { getSettings, logout, ssoLogout, userInfo } from './api/applications';
import type { UserInfo } from './api/types';
import { loginPath } from './api/client';
import { ApplicationDetail } from './pages/ApplicationDetail';
import { ApplicationSetDetail } from './pages/ApplicationSetDetail';
import { ApplicationSetsList } from './pages/ApplicationSetsList';
import { ApplicationsList } from './pages/ApplicationsList';
import { ClustersPage } from './pages/Clusters';
import { Login, Logo } from './pages/Login';
import { appRefIn } from './lib/application';
import { isSsoSession } from './lib/sso';
import { APPLICATIONSETS_PATH, CLUSTERS_PATH, navigate, onLinkClick, useLocation } from './router';
import './styles.css';

function App() {
  const { path, query } = useLocation();
  // Who is logged in (undefined while asked, null when nobody is).
  const [user, setUser] = useState<UserInfo | null>();
  // Which apps are outside the control namespace (their routes and calls name the namespace); the settings
  // say it to a logged-in caller only, so they are read with the user. `{}`: the server did not say.
  const [control, setControl] = useState<{ namespace?: string }>();
  const settingsAsked = useRef(0);
  const loadUser = useCallback(() => {
    setControl(undefined);
    userInfo()
      .then((u) => setUser(u.loggedIn ? u : null))
      .catch(() => setUser(null));
    // An answer from before the login (without the namespace) must not land after this one's.
    const asked = ++settingsAsked.current;
    const settle = (namespace?: string) => {
      if (asked === settingsAsked.current) setControl({ namespace });
    };
    getSettings()
      .then((s) => settle(s.controllerNamespace || undefined))
      .catch(() => settle());
  }, []);

  useEffect(() => {
    if (path !== '/login') loadUser();
  }, [path === '/login', loadUser]);

  useEffect(() => {
    if (path === '/' || path === '/applications/') navigate('/applications', { replace: true });
    else if (path === `${APPLICATIONSETS_PATH}/`) navigate(APPLICATIONSETS_PATH, { replace: true });
    else if (path === '/settings' || path === '/settings/' || path === `${CLUSTERS_PATH}/`) navigate(CLUSTERS_PATH, { replace: true });
    else if (user === null && path !== '/login') navigate(loginPath(), { replace: true });
  }, [path, user]);

  if (path === '/login') return <Login query={query} onLoggedIn={() => setUser(undefined)} />;
  if (user === undefined || (user !== null && control === undefined)) return <p class="empty">Loading…</p>;
  if (user === null || control === undefined) return null;

  // An SSO session ends at the server's /auth/logout (and maybe the provider's logout page after it); a local
  // account's in place.
  const signOut = async () => {
    if (isSsoSession(user)) {
      ssoLogout();
      return;
    }
    await logout();
    setUser(undefined);
    navigate('/login');
  };
  const groups = user.groups ?? [];

  // `/applications/{name}` (the control namespace) or `/applications/{namespace}/{name}`.
  const match = /^\/applications\/(?:([^/]+)\/)?([^/]+)\/?$/.exec(path);
  const name = match?.[2];
  const namespace = match?.[1];
  // `/applicationsets/{name}` or `/applicationsets/{namespace}/{name}`, as for apps.
  const setMatch = /^\/applicationsets\/(?:([^/]+)\/)?([^/]+)\/?$/.exec(path);
  const setName = setMatch?.[2];
  let page;
  if (path === '/applications') page = <ApplicationsList query={query} controlNamespace={control.namespace} />;
  else if (path === CLUSTERS_PATH) page = <ClustersPage />;
  else if (path === APPLICATIONSETS_PATH) page = <ApplicationSetsList controlNamespace={control.namespace} />;
  else if (setName)
    page = (
      <ApplicationSetDetail
        key={path}
        setRef={appRefIn(decodeURIComponent(setName), setMatch[1] && decodeURIComponent(setMatch[1]), control.namespace)}
        controlNamespace={control.namespace}
      />
    );
  else if (name)
    page = (
      <ApplicationDetail
        key={path}
        appRef={appRefIn(decodeURIComponent(name), namespace && decodeURIComponent(namespace), control.namespace)}
        controlNamespace={control.namespace}
        query={query}
      />
    );
  else
    page = (
      <div class="page">
        <h1>Not found</h1>
        <p>
          <a href="/applications" onClick={(e) => onLinkClick(e, '/applications')}>
            Applications
          </a>
        </p>
      </div>
    );

  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href="/applications" onClick={(e) => onLinkClick(e, '/applications')} aria-label="berth: applications">
          <Logo /> berth
        </a>
        <nav aria-label="Main">
          <a
            href="/applications"
            aria-current={path === '/applications' || path.startsWith('/applications/') ? 'page' : undefined}
            onClick={(e) => onLinkClick(e, '/applications')}
          >
            Applications
          </a>
          <a
            href={APPLICATIONSETS_PATH}
            aria-current={path.startsWith(APPLICATIONSETS_PATH) ? 'page' : undefined}
            onClick={(e) => onLinkClick(e, APPLICATIONSETS_PATH)}
          >
            ApplicationSets
          </a>
          <a
            href={CLUSTERS_PATH}
            aria-current={path.startsWith('/settings') ? 'page' : undefined}
            onClick={(e) => onLinkClick(e, CLUSTERS_PATH)}
          >
            Clusters
          </a>
        </nav>
        <div class="topbar-user">
          <span class="muted" data-testid="username" title={isSsoSession(user) ? `Logged in through ${user.iss ?? ''}` : undefined}>
            {user.username ?? ''}
          </span>
          {groups.length ? (
            <span class="muted small user-groups" data-testid="user-groups" title={`Groups: ${groups.join(', ')}`}>
              {groups.join(', ')}
            </span>
          ) : null}
          <button type="button" class="button small" onClick={() => void signOut()}>
            Log out
          </button>
        </div>
      </header>
      <main id="main">{page}</main>
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
