// One node: its power (desired and observed) with controls, its sensors with charts of the
// last five minutes, its BMC, its conditions and its recent events.
import * as api from './api';
import type { Ctx } from './main';
import { openConsole, type Console } from './console';
import { powerButton } from './rack';
import { chart, confirmChange, el, every, message } from './ui';

/** Seconds of sensor history the charts show. */
const SPAN = 300;

function actionButton(ctx: Ctx, name: string, action: 'PowerCycle' | 'ForceOff', text: string, question: string): HTMLButtonElement {
  const b = el('button', { class: 'action', 'data-action': action }, text);
  if (ctx.me.role === 'ReadOnly') {
    b.disabled = true;
    b.title = `${ctx.me.role} may not act on power; an Operator may`;
  }
  b.addEventListener('click', async () => {
    if (!(await confirmChange(question))) return;
    try {
      await api.act(name, action);
      ctx.status.textContent = `${text}: sent to ${name}'s BMC`;
    } catch (e) {
      ctx.status.textContent = message(e);
    }
  });
  return b;
}

export async function nodeView(ctx: Ctx, name: string): Promise<void> {
  const summary = el('div', { class: 'node-summary' });
  const controls = el('div', { class: 'controls' });
  const sensors = el('div', { class: 'sensors' });
  const bmc = el('dl', { class: 'bmc' });
  const conditions = el('ul', { class: 'conditions' });
  const events = el('ol', { class: 'events' });
  const consoleOut = el('pre', { class: 'console', 'aria-label': `${name} serial console` });
  const consoleIn = el('input', { class: 'console-input', 'aria-label': 'Type a line for the console', placeholder: 'Type a line, Enter sends it', disabled: '' });
  const consoleState = el('span', { class: 'console-state' }, 'not connected');
  const consoleButton = el('button', { class: 'console-open' }, 'Open console');
  if (ctx.me.role === 'ReadOnly') {
    consoleButton.disabled = true;
    consoleButton.title = `${ctx.me.role} may not use the console; an Operator may`;
  }
  const live: { console: Console | null } = { console: null };
  consoleButton.addEventListener('click', () => {
    live.console?.close();
    live.console = openConsole(name, consoleOut, consoleIn, (state) => {
      consoleState.textContent = state;
    });
  });
  ctx.root.replaceChildren(
    el('h2', {}, name),
    summary,
    controls,
    el('h3', {}, 'Sensors'),
    sensors,
    el('h3', {}, 'BMC'),
    bmc,
    el('h3', {}, 'Conditions'),
    conditions,
    el('h3', {}, 'Recent events'),
    events,
    el('h3', {}, 'Serial console'),
    el('div', { class: 'controls' }, consoleButton, consoleState),
    consoleOut,
    consoleIn,
  );
  const history = new Map<string, { at: number; value: number }[]>();
  let drawnControls = '';
  let bmcRead = 0;
  const done = every(ctx, 2000, async () => {
    const n = await api.node(name);
    const observed = n.status.powerState ?? 'Unknown';
    summary.replaceChildren(
      el('span', {}, `${n.spec.chassis}, tray ${n.spec.tray} · ${n.spec.board}${n.spec.role === 'Rmc' ? ' · RMC' : ''}`),
      el('span', { class: 'power-state', 'data-power': observed }, `Power ${observed} (desired ${n.spec.powerState})`),
      el('span', {}, `Boot ${n.spec.bootMode}`),
      el('span', {}, `${n.status.health} · ${n.status.sync}`),
    );
    // Redrawn only when the desired state changes, so a click is never lost.
    if (drawnControls !== n.spec.powerState) {
      drawnControls = n.spec.powerState;
      controls.replaceChildren(
        powerButton(ctx, n),
        actionButton(ctx, name, 'PowerCycle', 'Power cycle', `Power cycle ${name} now? Its OS is cut off and started again.`),
        actionButton(ctx, name, 'ForceOff', 'Force off', `Cut ${name}'s power now, without waiting for its OS to shut down?`),
      );
    }
    conditions.replaceChildren(
      ...(n.status.conditions ?? []).map((c) =>
        el('li', { class: c.status === 'True' ? 'true' : 'false' }, `${c.type}: ${c.status}${c.reason ? ` (${c.reason})` : ''}${c.message ? ` — ${c.message}` : ''}`),
      ),
    );

    const now = Date.now() / 1000;
    try {
      const readings = await api.sensors(name);
      sensors.replaceChildren(
        ...readings.map((s) => {
          const h = history.get(s.name) ?? [];
          if (s.reading !== undefined) h.push({ at: now, value: s.reading });
          while (h.length > 0 && now - h[0].at > SPAN) h.shift();
          history.set(s.name, h);
          const value = s.reading === undefined ? s.state : `${s.reading.toFixed(2)} ${s.units}`;
          return el(
            'figure',
            { class: 'sensor', 'data-sensor': s.name },
            el('figcaption', {}, `${s.name}: ${value}`),
            chart(h.map((p) => [now - p.at, p.value]), SPAN, s.units),
          );
        }),
      );
    } catch (e) {
      sensors.replaceChildren(el('p', { class: 'error' }, `Sensors: ${message(e)}`));
    }
    if (now - bmcRead > 10) {
      bmcRead = now;
      try {
        const b = await api.bmc(name);
        const row = (k: string, v: string) => [el('dt', {}, k), el('dd', {}, v)];
        bmc.replaceChildren(
          ...row('Trust', b.trust),
          ...row('Serial', b.serial),
          ...row('Firmware', b.firmwareVersion ?? 'not reported yet'),
          ...(b.reason ? row('Why', b.reason) : []),
        );
      } catch (e) {
        bmc.replaceChildren(el('dd', { class: 'error' }, message(e)));
      }
      const recent = (await api.events()).filter((e) => e.regarding?.name === name).slice(-10).reverse();
      events.replaceChildren(...recent.map((e) => el('li', { class: e.type.toLowerCase() }, `${e.eventTime} ${e.reason}: ${e.note}`)));
    }
  });
  await done;
  live.console?.close();
}
