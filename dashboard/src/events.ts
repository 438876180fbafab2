// Events, live: the control plane's event log (power changes, faults, hot-swap, fan
// failsafe, sign-ins, refused commits), newest first, filtered as you type.
import * as api from './api';
import type { Ctx } from './main';
import { el, every } from './ui';

/** Most events kept in the page. */
const KEEP = 500;

export async function eventsView(ctx: Ctx): Promise<void> {
  const filter = el('input', { type: 'search', placeholder: 'Filter (reason, node, text)', 'aria-label': 'Filter events' });
  const onlyWarnings = el('input', { type: 'checkbox' });
  const list = el('ol', { class: 'events' });
  ctx.root.replaceChildren(el('h2', {}, 'Events'), el('div', { class: 'filters' }, filter, el('label', {}, onlyWarnings, ' Warnings only')), list);
  let seen: api.Event[] = [];
  let since = 0;
  const draw = () => {
    const text = filter.value.toLowerCase();
    const shown = seen.filter(
      (e) =>
        (!onlyWarnings.checked || e.type === 'Warning') &&
        (text === '' || `${e.reason} ${e.regarding?.name ?? ''} ${e.note}`.toLowerCase().includes(text)),
    );
    list.replaceChildren(
      ...shown
        .slice()
        .reverse()
        .map((e) => el('li', { class: e.type.toLowerCase(), 'data-reason': e.reason }, `${e.eventTime} ${e.regarding?.name ?? ''} ${e.reason}: ${e.note}`)),
    );
  };
  filter.addEventListener('input', draw);
  onlyWarnings.addEventListener('change', draw);
  await every(ctx, 1000, async () => {
    const fresh = await api.events(since);
    if (fresh.length > 0) {
      since = fresh[fresh.length - 1].sequence;
      seen = seen.concat(fresh).slice(-KEEP);
      draw();
    }
  });
}
