// The control plane's API as the dashboard uses it: same origin, the session cookie, and
// the CSRF token on every change.

export type Role = 'ReadOnly' | 'Operator' | 'Administrator';

export interface Me {
  user: string;
  role: Role;
  csrfToken: string;
}

export interface Node {
  metadata: { name: string };
  spec: { chassis: string; tray: number; board: string; role: string; powerState: string; bootMode: string };
  status: {
    powerState?: string;
    sync: string;
    health: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let csrf = '';

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  const r = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  const value = text ? JSON.parse(text) : {};
  if (!r.ok) throw new ApiError(r.status, value.error ?? `${method} ${path}: ${r.status}`);
  return value as T;
}

export async function me(): Promise<Me | null> {
  try {
    const m = await call<Me>('GET', '/v1/session');
    csrf = m.csrfToken;
    return m;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

export async function signIn(user: string, password: string): Promise<Me> {
  const m = await call<Me>('POST', '/v1/session', { UserName: user, Password: password });
  csrf = m.csrfToken;
  return m;
}

export const signOut = () => call<void>('DELETE', '/v1/session');
export const nodes = () => call<{ items: Node[] }>('GET', '/v1/nodes').then((l) => l.items);

/** Desired power as a commit by the signed-in user. */
export const setPower = (node: string, powerState: 'On' | 'Off', message: string) =>
  call('POST', `/v1/nodes/${encodeURIComponent(node)}/power`, {
    powerState,
    message,
    author: { name: 'dashboard', email: 'dashboard@racklet.invalid' },
  });
