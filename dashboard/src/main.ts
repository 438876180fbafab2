// The Racklet dashboard: sign in, then the rack (every chassis with its tray slots, each
// tray coloured by health with its power state), refreshed every second. Changes of
// desired power are commits by the signed-in user; controls the user's role may not use
// are shown disabled (and the server refuses them anyway).
import * as api from './api';

const app = document.getElementById('app') as HTMLElement;
const REFRESH_MS = 1000;
/** Trays a Racklet chassis holds. */
const SLOTS = 7;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

function signInView(problem = ''): void {
  const user = el('input', { name: 'user', autocomplete: 'username', required: '', value: 'admin' });
  const password = el('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: '' });
  const error = el('p', { class: 'error', role: 'alert' }, problem);
  const form = el(
    'form',
    { class: 'signin' },
    el('h1', {}, 'Racklet'),
    el('label', {}, 'User', user),
    el('label', {}, 'Password', password),
    el('button', { type: 'submit' }, 'Sign in'),
    error,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      rackView(await api.signIn(user.value, password.value));
    } catch (e) {
      error.textContent = e instanceof Error ? e.message : String(e);
    }
  });
  app.replaceChildren(form);
  password.focus();
}

function header(me: api.Me): HTMLElement {
  const out = el('button', { class: 'link' }, 'Sign out');
  out.addEventListener('click', async () => {
    await api.signOut().catch(() => undefined);
    signInView();
  });
  return el('header', {}, el('h1', {}, 'Racklet'), el('span', { class: 'who' }, `${me.user} · ${me.role}`), out);
}

/** Asks before a change; resolves to the user's answer. */
function confirmChange(question: string): Promise<boolean> {
  const dialog = el(
    'dialog',
    { class: 'confirm' },
    el('p', {}, question),
    el('form', { method: 'dialog' }, el('button', { value: 'cancel' }, 'Cancel'), el('button', { value: 'ok', class: 'primary' }, 'Confirm')),
  );
  document.body.append(dialog);
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
  });
}

function healthClass(n: api.Node): string {
  const h = n.status.health.toLowerCase();
  return ['healthy', 'progressing', 'degraded', 'failed'].includes(h) ? h : 'unknown';
}

function trayView(n: api.Node | undefined, slot: number, me: api.Me, status: HTMLElement): HTMLElement {
  if (!n) return el('li', { class: 'tray empty', 'data-slot': String(slot) }, el('span', { class: 'slot' }, String(slot)), el('span', {}, 'empty'));
  const observed = n.status.powerState ?? 'Unknown';
  const wanted = n.spec.powerState === 'On' ? 'Off' : 'On';
  const button = el('button', { class: 'power', 'data-node': n.metadata.name }, `Power ${wanted.toLowerCase()}`);
  if (me.role === 'ReadOnly') {
    button.setAttribute('disabled', '');
    button.title = `${me.role} may not change power; an Operator may`;
  }
  button.addEventListener('click', async () => {
    if (!(await confirmChange(`Power ${n.metadata.name} ${wanted.toLowerCase()}? This commits powerState: ${wanted} to the repository as ${me.user}.`))) return;
    try {
      await api.setPower(n.metadata.name, wanted, `Power ${n.metadata.name} ${wanted.toLowerCase()} (dashboard)`);
      status.textContent = `Committed: ${n.metadata.name} powerState ${wanted}`;
    } catch (e) {
      status.textContent = e instanceof Error ? e.message : String(e);
    }
  });
  return el(
    'li',
    { class: `tray ${healthClass(n)}`, 'data-slot': String(slot), 'data-node': n.metadata.name, 'data-power': observed },
    el('span', { class: 'slot' }, String(slot)),
    el('span', { class: 'name' }, n.metadata.name),
    el('span', { class: 'board' }, `${n.spec.board}${n.spec.role === 'Rmc' ? ' · RMC' : ''}`),
    el('span', { class: 'power-state' }, `${observed}${n.spec.powerState !== observed ? ` → ${n.spec.powerState}` : ''}`),
    el('span', { class: 'health' }, `${n.status.health} · ${n.status.sync}`),
    button,
  );
}

async function rackView(me: api.Me): Promise<void> {
  const rack = el('section', { class: 'rack', 'aria-label': 'Rack' });
  const status = el('p', { class: 'status', role: 'status' });
  app.replaceChildren(header(me), rack, status);
  const draw = async (): Promise<boolean> => {
    let nodes: api.Node[];
    try {
      nodes = await api.nodes();
    } catch (e) {
      if (e instanceof api.ApiError && e.status === 401) {
        signInView('Your session ended; sign in again.');
        return false;
      }
      status.textContent = e instanceof Error ? e.message : String(e);
      return true;
    }
    const chassis = [...new Set(nodes.map((n) => n.spec.chassis))].sort();
    rack.replaceChildren(
      ...chassis.map((c) => {
        const here = nodes.filter((n) => n.spec.chassis === c);
        const slots = Math.max(SLOTS, ...here.map((n) => n.spec.tray));
        const trays = Array.from({ length: slots }, (_, i) => trayView(here.find((n) => n.spec.tray === i + 1), i + 1, me, status));
        return el('article', { class: 'chassis', 'data-chassis': c }, el('h2', {}, c), el('ol', { class: 'trays' }, ...trays));
      }),
    );
    return true;
  };
  while (await draw()) {
    await new Promise((r) => setTimeout(r, REFRESH_MS));
    // A confirmation open: keep its buttons where they are.
    while (document.querySelector('dialog[open]')) await new Promise((r) => setTimeout(r, 100));
  }
}

async function start(): Promise<void> {
  const m = await api.me();
  if (m) await rackView(m);
  else signInView();
}

start().catch((e) => {
  app.textContent = e instanceof Error ? e.message : String(e);
});
