#!/usr/bin/env node
// Dashboard benchmark against `racklet up` (scripts/bench-dashboard runs it): bytes a
// first load of the rack view transfers, time from a change the control plane serves to
// the page showing it, and what 20 open dashboards cost the server (RSS of the process
// that serves them, given as RACKLET_SERVER_PID). Prints JSON.
import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const need = (n) => process.env[n] ?? (() => { throw new Error(`${n} is not set`); })();
const url = need('RACKLET_DASHBOARD_URL');
const password = readFileSync(need('RACKLET_ADMIN_PASSWORD_FILE'), 'utf8').trim();
const token = readFileSync(need('RACKLET_API_TOKEN_FILE'), 'utf8').trim();
const pid = need('RACKLET_SERVER_PID');
const cert = new X509Certificate(readFileSync(need('RACKLET_CERT')));
const spki = createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [`--ignore-certificate-errors-spki-list=${spki}`, '--no-sandbox'],
});
const signIn = async (page) => {
  await page.goto(url);
  await page.fill('input[name=password]', password);
  await page.click('form.signin button');
  await page.waitForFunction(() => document.querySelectorAll('.tray[data-node]').length === 7);
};
const out = {};
try {
  // First load: every byte of every response until the rack shows its seven trays.
  const page = await (await browser.newContext()).newPage();
  const sizes = [];
  page.on('requestfinished', (r) => sizes.push(r.sizes().then((s) => s.responseBodySize + s.responseHeadersSize)));
  await signIn(page);
  out.firstLoadBytes = (await Promise.all(sizes)).reduce((a, b) => a + b, 0);
  out.firstLoadRequests = sizes.length;

  // Change to DOM: the desired power of node-2 flips through the API; the time from the
  // API first serving the new desired state to the page showing it.
  const api = async (path, body) => {
    const r = await fetch(new URL(path, url), {
      method: body ? 'POST' : 'GET',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
    });
    return r.json();
  };
  out.changeToDomMs = [];
  for (const state of ['Off', 'On', 'Off', 'On']) {
    await api('/v1/nodes/node-2/power', { powerState: state, author: { name: 'bench', email: 'bench@racklet.invalid' } });
    let served = 0;
    while (!served) {
      const nodes = await api('/v1/nodes');
      if (nodes.items.find((n) => n.metadata.name === 'node-2')?.spec.powerState === state) served = performance.now();
      else await sleep(10);
    }
    const want = state === 'On' ? 'Power off' : 'Power on';
    await page.waitForFunction((w) => document.querySelector('.tray[data-node="node-2"] button.power')?.textContent === w, want, { polling: 10 });
    out.changeToDomMs.push(Math.round(performance.now() - served));
  }

  // Twenty dashboards open on the rack view.
  await sleep(2000);
  const before = rss();
  const pages = [];
  for (let i = 0; i < 20; i++) {
    const p = await (await browser.newContext()).newPage();
    await signIn(p);
    pages.push(p);
  }
  await sleep(10_000);
  out.serverRssKiB = { before, with20: rss() };
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
