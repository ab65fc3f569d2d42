// berth's web UI: the shell (top bar, session) and the three routes.
import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { logout, userInfo } from './api/applications';
import { loginPath } from './api/client';
import { ApplicationDetail } from './pages/ApplicationDetail';
import { ApplicationsList } from './pages/ApplicationsList';
import { Login, Logo } from './pages/Login';
import { navigate, onLinkClick, useLocation } from './router';
import './styles.css';

function App() {
  const { path, query } = useLocation();
  const [user, setUser] = useState<string | null>();
  const loadUser = useCallback(() => {
    userInfo()
      .then((u) => setUser(u.loggedIn ? (u.username ?? '') : null))
      .catch(() => setUser(null));
  }, []);

  useEffect(() => {
    if (path !== '/login') loadUser();
  }, [path === '/login', loadUser]);

  useEffect(() => {
    if (path === '/' || path === '/applications/') navigate('/applications', { replace: true });
    else if (user === null && path !== '/login') navigate(loginPath(), { replace: true });
  }, [path, user]);

  if (path === '/login') return <Login query={query} onLoggedIn={() => setUser(undefined)} />;
  if (user === undefined) return <p class="empty">Loading…</p>;
  if (user === null) return null;

  const signOut = async () => {
    await logout();
    setUser(undefined);
    navigate('/login');
  };

  const match = /^\/applications\/([^/]+)\/?$/.exec(path);
  let page;
  if (path === '/applications') page = <ApplicationsList query={query} />;
  else if (match?.[1]) page = <ApplicationDetail key={match[1]} name={decodeURIComponent(match[1])} query={query} />;
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
            aria-current={path.startsWith('/applications') ? 'page' : undefined}
            onClick={(e) => onLinkClick(e, '/applications')}
          >
            Applications
          </a>
        </nav>
        <div class="topbar-user">
          <span class="muted" data-testid="username">
            {user}
          </span>
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
