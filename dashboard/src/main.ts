// The Racklet dashboard: sign in, then four views behind a hash route, each refreshed
// while it is shown: the rack (#/), a node (#/node/NAME), GitOps (#/gitops) and events
// (#/events). Changes of desired power are commits by the signed-in user; controls the
// user's role may not use are shown disabled (the server refuses them anyway).
import * as api from './api';
import { el, message } from './ui';
import { rackView } from './rack';
import { nodeView } from './node';
import { gitopsView } from './gitops';
import { eventsView } from './events';

const app = document.getElementById('app') as HTMLElement;
let signedIn: api.Me | null = null;
/** Bumped on every navigation: a view's refresh loop stops when it is no longer current. */
let generation = 0;

export interface Ctx {
  me: api.Me;
  /** Where the view draws. */
  root: HTMLElement;
  /** Status line for what a change did. */
  status: HTMLElement;
  /** Whether this view is still the one shown. */
  current: () => boolean;
  signedOut: (why?: string) => void;
}

function signInView(problem = ''): void {
  generation += 1;
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
      signedIn = await api.signIn(user.value, password.value);
      show(signedIn);
    } catch (e) {
      error.textContent = message(e);
    }
  });
  app.replaceChildren(form);
  password.focus();
}

function header(me: api.Me, route: string): HTMLElement {
  const out = el('button', { class: 'link' }, 'Sign out');
  out.addEventListener('click', async () => {
    try {
      await api.signOut();
      signedIn = null;
      signInView();
    } catch (e) {
      const status = document.querySelector('.status');
      if (status) status.textContent = `Signing out failed: ${message(e)}`;
    }
  });
  const link = (href: string, text: string) =>
    el('a', href === route || (href === '#/' && route.startsWith('#/node/')) ? { href, 'aria-current': 'page' } : { href }, text);
  return el(
    'header',
    {},
    el('h1', {}, 'Racklet'),
    el('nav', {}, link('#/', 'Rack'), link('#/gitops', 'GitOps'), link('#/events', 'Events')),
    el('span', { class: 'who' }, `${me.user} · ${me.role}`),
    out,
  );
}

function show(me: api.Me): void {
  generation += 1;
  const mine = generation;
  const route = location.hash || '#/';
  const root = el('section', { class: 'view' });
  const status = el('p', { class: 'status', role: 'status' });
  app.replaceChildren(header(me, route), root, status);
  const ctx: Ctx = {
    me,
    root,
    status,
    current: () => generation === mine,
    signedOut: (why) => {
      signedIn = null;
      signInView(why ?? 'Your session ended; sign in again.');
    },
  };
  const node = /^#\/node\/(.+)$/.exec(route);
  let nodeName: string | null = null;
  try {
    nodeName = node ? decodeURIComponent(node[1]) : null;
  } catch {
    status.textContent = `No such page: ${route}`;
  }
  const view = nodeName !== null
    ? nodeView(ctx, nodeName)
    : route === '#/gitops'
      ? gitopsView(ctx)
      : route === '#/events'
        ? eventsView(ctx)
        : rackView(ctx);
  view.catch((e) => {
    if (ctx.current()) status.textContent = message(e);
  });
}

window.addEventListener('hashchange', () => {
  if (signedIn) show(signedIn);
});

async function start(): Promise<void> {
  signedIn = await api.me();
  if (signedIn) show(signedIn);
  else signInView();
}

start().catch((e) => {
  app.textContent = message(e);
});
