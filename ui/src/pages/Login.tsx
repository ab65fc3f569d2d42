// Local accounts: POST /api/v1/session sets the argocd.token cookie; then back to where the user was. With SSO
// configured (argocd-cm's oidc.config or dex.config), "Log in via …" goes through the server's /auth/login;
// a failed SSO login comes back here with `sso_error`.
import { useEffect, useState } from 'preact/hooks';
import { getSettings, login, ssoLoginHref } from '../api/applications';
import type { Settings } from '../api/types';
import { ssoProvider } from '../lib/sso';
import { navigate } from '../router';

/** Only paths of this site: never another origin's URL, nor a protocol-relative one. */
function sitePath(back: string): string | undefined {
  if (back.startsWith('/') && !back.startsWith('//')) return back;
  try {
    // Argo CD's `return_url` is an absolute URL of the server itself.
    const url = new URL(back);
    if (url.origin === location.origin) return url.pathname + url.search + url.hash;
  } catch {
    // not a URL
  }
  return undefined;
}

/** Where to go once logged in: berth's `return` or Argo CD's `return_url`, else the applications. */
function safeReturn(q: URLSearchParams): string {
  const back = sitePath(q.get('return') ?? q.get('return_url') ?? '');
  return back && !back.startsWith('/login') ? back : '/applications';
}

export function Login({ query, onLoggedIn }: { query: URLSearchParams; onLoggedIn: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  // undefined while asked; null when the server did not say (then the local login form, as before SSO).
  const [settings, setSettings] = useState<Settings | null>();
  // `sso_error` (or Argo CD's older `has_sso_error=true`) says a login through the provider failed. Its text
  // is not shown: anyone can put words in a link to this page, so the page says only what it knows.
  const [ssoError, setSsoError] = useState(
    query.has('sso_error') || query.get('has_sso_error') === 'true'
      ? 'Login through SSO failed. Try again, or ask your administrator.'
      : undefined,
  );

  useEffect(() => {
    document.title = 'Log in · berth';
    getSettings()
      .then(setSettings)
      .catch(() => setSettings(null));
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setSsoError(undefined);
    try {
      await login(username.trim(), password);
      onLoggedIn();
      navigate(safeReturn(query), { replace: true });
    } catch (err) {
      setError((err as Error).message || 'Login failed');
      setBusy(false);
    }
  };

  const provider = ssoProvider(settings);
  const localLogins = settings !== undefined && !settings?.userLoginsDisabled;

  return (
    <main class="login">
      <form class="login-box" onSubmit={(e) => void submit(e)} aria-labelledby="login-title">
        <div class="brand brand-large" aria-hidden="true">
          <Logo /> berth
        </div>
        <h1 id="login-title">Log in</h1>
        {error ? (
          <p class="banner banner-bad" role="alert">
            {error}
          </p>
        ) : null}
        {ssoError ? (
          <p class="banner banner-bad" role="alert" data-testid="sso-error">
            {ssoError}
          </p>
        ) : null}
        {provider ? (
          <div class="login-sso">
            {/* A link, not a button: the provider's pages are a full navigation away. */}
            <a class="button primary wide" href={ssoLoginHref(safeReturn(query))}>
              Log in via {provider}
            </a>
            {localLogins ? (
              <p class="login-or muted" aria-hidden="true">
                <span>or</span>
              </p>
            ) : null}
          </div>
        ) : null}
        {localLogins ? (
          <>
            <label class="field">
              <span>Username</span>
              <input
                name="username"
                type="text"
                autoComplete="username"
                value={username}
                onInput={(e) => setUsername(e.currentTarget.value)}
                required
                autoFocus={!provider}
              />
            </label>
            <label class="field">
              <span>Password</span>
              <input
                name="password"
                type="password"
                autoComplete="current-password"
                value={password}
                onInput={(e) => setPassword(e.currentTarget.value)}
                required
              />
            </label>
            <button type="submit" class={`button wide${provider ? '' : ' primary'}`} disabled={busy}>
              {busy ? 'Logging in…' : 'Log in'}
            </button>
            <p class="muted small">
              Local accounts of argocd-cm. The admin's first password is in the Secret argocd-initial-admin-secret.
            </p>
          </>
        ) : null}
        {settings && settings.userLoginsDisabled && !provider ? (
          <p class="banner banner-warn" role="alert">
            Login is disabled: argocd-cm has no local account that may log in, and no SSO. Ask your administrator.
          </p>
        ) : null}
        {settings === undefined ? <p class="muted">Loading…</p> : null}
      </form>
    </main>
  );
}

export function Logo() {
  return (
    <svg width="24" height="24" viewBox="0 0 24 24" aria-hidden="true" class="logo">
      <path d="M3 15h18l-3 5H6z" />
      <path d="M12 3v10M12 4l6 7h-6" class="logo-sail" />
    </svg>
  );
}
