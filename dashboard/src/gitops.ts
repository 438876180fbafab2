// GitOps: the revision in force and where it came from, the source's conditions (a
// refused commit says why, with FILE:LINE:COLUMN), each node's sync and health, and the
// firmware roll-outs with their progress.
import * as api from './api';
import type { Ctx } from './main';
import { el, every, message } from './ui';

export async function gitopsView(ctx: Ctx): Promise<void> {
  const source = el('dl', { class: 'source' });
  const conditions = el('ul', { class: 'conditions' });
  const nodes = el('table', { class: 'nodes' });
  const rollouts = el('ul', { class: 'rollouts' });
  const syncNow = el('button', {}, 'Sync now');
  if (ctx.me.role === 'ReadOnly') {
    syncNow.disabled = true;
    syncNow.title = `${ctx.me.role} may not start a sync; an Operator may`;
  }
  syncNow.addEventListener('click', async () => {
    try {
      await api.sync();
      ctx.status.textContent = 'Sync requested';
    } catch (e) {
      ctx.status.textContent = message(e);
    }
  });
  ctx.root.replaceChildren(
    el('h2', {}, 'Desired state'),
    source,
    syncNow,
    el('h3', {}, 'Source conditions'),
    conditions,
    el('h3', {}, 'Nodes'),
    nodes,
    el('h3', {}, 'Firmware roll-outs'),
    rollouts,
  );
  await every(ctx, 2000, async () => {
    const [s, list, r] = await Promise.all([api.source(), api.nodes(), api.rollouts()]);
    const row = (k: string, v: string) => [el('dt', {}, k), el('dd', {}, v)];
    source.replaceChildren(
      ...row('Repository', `${s.spec.url} (${s.spec.ref}, ${s.spec.path || '/'})`),
      ...row('Revision in force', `${s.status.appliedRevision?.slice(0, 12) ?? 'none'} ${s.status.appliedSubject}`),
      ...row('Fetched', `${s.status.fetchedRevision?.slice(0, 12) ?? 'none'} at ${s.status.lastFetchTime ?? 'never'}`),
    );
    conditions.replaceChildren(
      ...s.status.conditions.map((c) =>
        el('li', { class: c.status === 'True' ? 'true' : 'false' }, el('strong', {}, `${c.type}: ${c.status} (${c.reason})`), el('pre', {}, c.message)),
      ),
    );
    nodes.replaceChildren(
      el('tr', {}, el('th', {}, 'Node'), el('th', {}, 'Sync'), el('th', {}, 'Health'), el('th', {}, 'Power')),
      ...list.map((n) =>
        el(
          'tr',
          { 'data-node': n.metadata.name },
          el('td', {}, el('a', { href: `#/node/${encodeURIComponent(n.metadata.name)}` }, n.metadata.name)),
          el('td', {}, n.status.sync),
          el('td', {}, n.status.health),
          el('td', {}, `${n.status.powerState ?? 'Unknown'} (desired ${n.spec.powerState})`),
        ),
      ),
    );
    rollouts.replaceChildren(
      ...(r.length === 0
        ? [el('li', {}, 'none')]
        : r.map((x) => {
            const done = x.status.trays.filter((t) => t.phase === 'Done').length;
            return el('li', {}, `${x.metadata.name}: version ${x.spec.version} ${x.status.phase}, ${done}/${x.status.trays.length} trays. ${x.status.message}`);
          })),
    );
  });
}
