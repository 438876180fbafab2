// Small DOM helpers shared by the views.

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

/** Asks before a change; resolves to the user's answer. */
export function confirmChange(question: string): Promise<boolean> {
  const dialog = el(
    'dialog',
    { class: 'confirm' },
    el('p', {}, question),
    el(
      'form',
      { method: 'dialog' },
      el('button', { value: 'cancel' }, 'Cancel'),
      el('button', { value: 'ok', class: 'primary' }, 'Confirm'),
    ),
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

export const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A line chart of `points` ([seconds ago, value]) over the last `span` seconds, as SVG. */
export function chart(points: [number, number][], span: number, unit: string): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  const w = 300;
  const h = 80;
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  const values = points.map((p) => p[1]);
  const top = Math.max(1, ...values) * 1.1;
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute(
    'points',
    points.map(([ago, v]) => `${(w * (1 - ago / span)).toFixed(1)},${(h - (h * v) / top).toFixed(1)}`).join(' '),
  );
  svg.append(line);
  const lastPoint = points.at(-1);
  if (lastPoint) {
    const dot = document.createElementNS(ns, 'circle');
    dot.setAttribute('cx', (w * (1 - lastPoint[0] / span)).toFixed(1));
    dot.setAttribute('cy', (h - (h * lastPoint[1]) / top).toFixed(1));
    dot.setAttribute('r', '2.5');
    svg.append(dot);
  }
  const label = document.createElementNS(ns, 'text');
  label.setAttribute('x', '4');
  label.setAttribute('y', '12');
  label.textContent = `${top.toFixed(1)} ${unit}`;
  svg.append(label);
  const last = values.at(-1);
  svg.setAttribute('aria-label', last === undefined ? `no readings yet (${unit})` : `latest ${last.toFixed(2)} ${unit}`);
  return svg;
}

/**
 * Runs `draw` now and every `ms` while the view is current; a 401 (the session ended)
 * goes back to signing in, other errors show in the status line and the loop goes on.
 */
export async function every(
  ctx: { current: () => boolean; status: HTMLElement; signedOut: (why?: string) => void },
  ms: number,
  draw: () => Promise<void>,
): Promise<void> {
  while (ctx.current()) {
    try {
      await draw();
    } catch (e) {
      if ((e as { status?: number }).status === 401) {
        if (ctx.current()) ctx.signedOut();
        return;
      }
      if (ctx.current()) ctx.status.textContent = message(e);
    }
    await sleep(ms);
    // A confirmation open: keep its buttons where they are. A hidden tab does not poll,
    // so a forgotten tab lets its session time out.
    while (ctx.current() && (document.querySelector('dialog[open]') || document.hidden)) await sleep(250);
  }
}
