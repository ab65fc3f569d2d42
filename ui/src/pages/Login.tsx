// Local accounts: POST /api/v1/session sets the argocd.token cookie; then back to where the user was.
import { useEffect, useState } from 'preact/hooks';
import { login } from '../api/applications';
import { navigate } from '../router';

function safeReturn(q: URLSearchParams): string {
  const back = q.get('return') ?? '';
  // Only paths of this site: never an absolute or protocol-relative URL.
  return back.startsWith('/') && !back.startsWith('//') && !back.startsWith('/login') ? back : '/applications';
}

export function Login({ query, onLoggedIn }: { query: URLSearchParams; onLoggedIn: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    document.title = 'Log in · berth';
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await login(username.trim(), password);
      onLoggedIn();
      navigate(safeReturn(query), { replace: true });
    } catch (err) {
      setError((err as Error).message || 'Login failed');
      setBusy(false);
    }
  };

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
        <label class="field">
          <span>Username</span>
          <input
            name="username"
            type="text"
            autoComplete="username"
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
            required
            autoFocus
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
        <button type="submit" class="button primary wide" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
        <p class="muted small">Local accounts of argocd-cm. The admin's first password is in the Secret argocd-initial-admin-secret.</p>
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
