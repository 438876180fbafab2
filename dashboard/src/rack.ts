// The rack: every chassis with its tray slots (seven, empty ones shown), each tray
// coloured by health with its power state and a power control, refreshed every second.
import * as api from './api';
import type { Ctx } from './main';
import { confirmChange, el, every, message } from './ui';

/** Trays a Racklet chassis holds. */
const SLOTS = 7;

function healthClass(n: api.Node): string {
  const h = n.status.health.toLowerCase();
  return ['healthy', 'progressing', 'degraded', 'failed'].includes(h) ? h : 'unknown';
}

/** The power control of a node: a commit of the other desired state, after a confirmation. */
export function powerButton(ctx: Ctx, n: api.Node): HTMLButtonElement {
  const wanted = n.spec.powerState === 'On' ? 'Off' : 'On';
  const button = el('button', { class: 'power', 'data-node': n.metadata.name }, `Power ${wanted.toLowerCase()}`);
  if (ctx.me.role === 'ReadOnly') {
    button.disabled = true;
    button.title = `${ctx.me.role} may not change power; an Operator may`;
  }
  button.addEventListener('click', async () => {
    const question = `Power ${n.metadata.name} ${wanted.toLowerCase()}? This commits powerState: ${wanted} to the repository as ${ctx.me.user}.`;
    if (!(await confirmChange(question))) return;
    try {
      await api.setPower(n.metadata.name, wanted, `Power ${n.metadata.name} ${wanted.toLowerCase()} (dashboard)`);
      ctx.status.textContent = `Committed: ${n.metadata.name} powerState ${wanted}`;
    } catch (e) {
      ctx.status.textContent = message(e);
    }
  });
  return button;
}

function trayView(ctx: Ctx, n: api.Node | undefined, slot: number): HTMLElement {
  if (!n) {
    return el('li', { class: 'tray empty', 'data-slot': String(slot) }, el('span', { class: 'slot' }, String(slot)), el('span', {}, 'empty'));
  }
  const observed = n.status.powerState ?? 'Unknown';
  return el(
    'li',
    { class: `tray ${healthClass(n)}`, 'data-slot': String(slot), 'data-node': n.metadata.name, 'data-power': observed },
    el('span', { class: 'slot' }, String(slot)),
    el('a', { class: 'name', href: `#/node/${encodeURIComponent(n.metadata.name)}` }, n.metadata.name),
    el('span', { class: 'board' }, `${n.spec.board}${n.spec.role === 'Rmc' ? ' · RMC' : ''}`),
    el('span', { class: 'power-state' }, `${observed}${n.spec.powerState !== observed ? ` → ${n.spec.powerState}` : ''}`),
    el('span', { class: 'health' }, `${n.status.health} · ${n.status.sync}`),
    powerButton(ctx, n),
  );
}

export async function rackView(ctx: Ctx): Promise<void> {
  const rack = el('div', { class: 'rack', 'aria-label': 'Rack' });
  ctx.root.replaceChildren(rack);
  let drawn = '';
  await every(ctx, 1000, async () => {
    const nodes = await api.nodes();
    // Redrawn only when something changed: a redraw would drop a click in progress and
    // the keyboard focus.
    const now = JSON.stringify(nodes);
    if (now === drawn) return;
    drawn = now;
    const chassis = [...new Set(nodes.map((n) => n.spec.chassis))].sort();
    rack.replaceChildren(
      ...chassis.map((c) => {
        const here = nodes.filter((n) => n.spec.chassis === c);
        const slots = Math.max(SLOTS, ...here.map((n) => n.spec.tray));
        const trays = Array.from({ length: slots }, (_, i) => trayView(ctx, here.find((n) => n.spec.tray === i + 1), i + 1));
        return el('article', { class: 'chassis', 'data-chassis': c }, el('h2', {}, c), el('ol', { class: 'trays' }, ...trays));
      }),
    );
  });
}
