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

export interface Sensor {
  name: string;
  reading?: number;
  units: string;
  state: string;
}

export interface Bmc {
  node: string;
  chassis: string;
  tray: number;
  serial: string;
  trust: string;
  identity?: string;
  reason?: string;
  firmwareVersion?: string;
}

export interface Event {
  sequence: number;
  eventTime: string;
  type: string;
  reason: string;
  regarding?: { kind: string; name: string };
  note: string;
}

export interface Source {
  spec: { url: string; ref: string; path: string };
  status: {
    appliedRevision?: string;
    appliedSubject: string;
    fetchedRevision?: string;
    lastFetchTime?: string;
    lastAppliedTime?: string;
    conditions: { type: string; status: string; reason: string; message: string }[];
  };
}

export interface Rollout {
  metadata: { name: string };
  spec: { policy: string; chassis: string; version: number };
  status: { phase: string; trays: { tray: number; phase: string; message?: string }[]; message: string };
}

const q = encodeURIComponent;
export const node = (name: string) => call<Node>('GET', `/v1/nodes/${q(name)}`);
export const sensors = (name: string) => call<{ items: Sensor[] }>('GET', `/v1/nodes/${q(name)}/sensors`).then((l) => l.items);
export const bmc = (name: string) => call<Bmc>('GET', `/v1/nodes/${q(name)}/bmc`);
export const events = (since = 0) => call<{ items: Event[] }>('GET', `/v1/events?since=${since}`).then((l) => l.items);
export const source = () => call<Source>('GET', '/v1/source');
export const rollouts = () => call<{ items: Rollout[] }>('GET', '/v1/rollouts').then((l) => l.items);
/** An imperative action passed to the node's BMC (recorded as the signed-in user's). */
export const act = (name: string, action: 'PowerCycle' | 'ForceOff') =>
  call('POST', `/v1/nodes/${q(name)}/actions`, { action });
export const sync = () => call('POST', '/v1/sync');
