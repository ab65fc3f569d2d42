// Same-origin fetches carrying the argocd.token cookie; a 401 anywhere sends the user to /login.
import { navigate } from '../router';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function loginPath(): string {
  const back = location.pathname + location.search;
  return back.startsWith('/login') || back === '/' ? '/login' : `/login?return=${encodeURIComponent(back)}`;
}

export function toLogin(): void {
  if (location.pathname !== '/login') navigate(loginPath(), { replace: true });
}

async function errorOf(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { message?: string; error?: string };
    message = body.message ?? body.error ?? message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, message);
}

export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  // The server refuses state-changing requests without the JSON content type, bodyless ones too (CSRF).
  const changes = (init.method ?? 'GET').toUpperCase() !== 'GET';
  if ((init.body !== undefined || changes) && !headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
  const res = await fetch(path, { credentials: 'same-origin', ...init, headers });
  if (res.status === 401 && !path.startsWith('/api/v1/session')) {
    toLogin();
    throw new ApiError(401, 'session expired: log in again');
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await request(path, { signal });
  return (await res.json()) as T;
}

export async function sendJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await request(path, { method, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return (text ? JSON.parse(text) : {}) as T;
}
