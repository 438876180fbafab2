#!/usr/bin/env node
// Drives the dashboard in a real browser: Debian's chromium, headless, through
// playwright-core (no browser download). Run by crates/racklet-cli/tests/dashboard.rs
// against `racklet up`; on its own:
//   RACKLET_DASHBOARD_URL=https://127.0.0.1:PORT/ RACKLET_ADMIN_PASSWORD_FILE=FILE \
//   RACKLET_CERT=DIR/controlplane/tls/cert.pem RACKLET_SCREENSHOTS=DIR node e2e/run.mjs
// It trusts exactly the control plane's certificate (its public key's hash), signs in
// (a wrong password first), checks the rack, shows that a ReadOnly account's power
// controls are disabled and refused, powers node-6 on with confirmation, visits the node,
// GitOps and events views, and writes screenshots of each at 1280×800 and at phone width.
// The last stdout line is a JSON summary.
import { X509Certificate, createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const url = need('RACKLET_DASHBOARD_URL');
const password = readFileSync(need('RACKLET_ADMIN_PASSWORD_FILE'), 'utf8').trim();
const cert = new X509Certificate(readFileSync(need('RACKLET_CERT')));
const spki = createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
const shots = need('RACKLET_SCREENSHOTS');
mkdirSync(shots, { recursive: true });
const WITHIN = 30_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [`--ignore-certificate-errors-spki-list=${spki}`, '--no-sandbox'],
});
const summary = { ok: false };
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const violations = [];
  page.on('console', (m) => {
    if (m.type() === 'error') violations.push(m.text());
  });
  let bytes = 0;
  page.on('response', async (r) => {
    const body = await r.body().catch(() => Buffer.alloc(0));
    bytes += body.length;
  });

  await page.goto(url);
  await page.waitForSelector('form.signin', { timeout: WITHIN });
  await page.screenshot({ path: join(shots, 'signin-1280x800.png') });
  // A wrong password is refused, with a message.
  await page.fill('input[name=password]', 'not the password');
  await page.click('form.signin button');
  await page.waitForFunction(() => document.querySelector('.error')?.textContent?.includes('wrong'), null, { timeout: WITHIN });
  // The right one opens the rack.
  await page.fill('input[name=password]', password);
  await page.click('form.signin button');
  await page.waitForSelector('.tray[data-node]', { timeout: WITHIN });
  await page.waitForFunction(() => document.querySelectorAll('.chassis[data-chassis] .tray[data-node]').length === 7, null, { timeout: WITHIN });
  summary.firstLoadBytes = bytes;
  summary.trays = await page.$$eval('.tray[data-node]', (t) => t.map((e) => e.getAttribute('data-node')));
  await page.screenshot({ path: join(shots, 'rack-1280x800.png'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(shots, 'rack-390x844.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });

  // A ReadOnly account: made by the admin through the API, as the page itself would.
  const created = await page.evaluate(async () => {
    const me = await (await fetch('/v1/session')).json();
    const r = await fetch('/v1/accounts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrfToken },
      body: JSON.stringify({ UserName: 'viewer', Password: 'a long viewer password', RoleId: 'ReadOnly' }),
    });
    return r.status;
  });
  if (created !== 201) throw new Error(`creating the ReadOnly account answered ${created}`);
  // A forged cross-site request: the cookie without the CSRF token is refused.
  summary.forgedStatus = await page.evaluate(async () => (await fetch('/v1/sync', { method: 'POST' })).status);
  if (summary.forgedStatus !== 403) throw new Error(`a change without the CSRF token answered ${summary.forgedStatus}`);

  await page.click('header button.link'); // sign out
  await page.waitForSelector('form.signin', { timeout: WITHIN });
  await page.fill('input[name=user]', 'viewer');
  await page.fill('input[name=password]', 'a long viewer password');
  await page.click('form.signin button');
  await page.waitForSelector('.tray[data-node="node-6"] button.power', { timeout: WITHIN });
  summary.readOnlyDisabled = await page.$eval('.tray[data-node="node-6"] button.power', (b) => b.disabled);
  if (!summary.readOnlyDisabled) throw new Error('a ReadOnly account sees an enabled power button');
  // The console is an Operator's too: the server refuses a ReadOnly account's handshake.
  summary.readOnlyConsole = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const ws = new WebSocket(`wss://${location.host}/v1/nodes/node-1/console`);
        ws.onopen = () => {
          ws.close();
          resolve('opened');
        };
        ws.onerror = () => resolve('refused');
      }),
  );
  if (summary.readOnlyConsole !== 'refused') throw new Error('a ReadOnly account opened a console');
  summary.readOnlyRefused = await page.evaluate(async () => {
    const me = await (await fetch('/v1/session')).json();
    const r = await fetch('/v1/nodes/node-6/power', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrfToken },
      body: JSON.stringify({ powerState: 'On', author: { name: 'x', email: 'x@example.com' } }),
    });
    return r.status;
  });
  if (summary.readOnlyRefused !== 403) throw new Error(`the server let a ReadOnly account power a tray: ${summary.readOnlyRefused}`);
  await page.screenshot({ path: join(shots, 'rack-readonly-1280x800.png'), fullPage: true });
  await page.click('header button.link');

  // The admin powers node-6 on: a confirmation, a commit, then the tray comes on.
  await page.waitForSelector('form.signin', { timeout: WITHIN });
  await page.fill('input[name=user]', 'admin');
  await page.fill('input[name=password]', password);
  await page.click('form.signin button');
  await page.waitForSelector('.tray[data-node="node-6"] button.power:not([disabled])', { timeout: WITHIN });
  await page.click('.tray[data-node="node-6"] button.power');
  await page.waitForSelector('dialog.confirm[open]', { timeout: WITHIN });
  await page.screenshot({ path: join(shots, 'confirm-1280x800.png') });
  await page.click('dialog.confirm button[value=ok]');
  await page.waitForFunction(() => document.querySelector('.status')?.textContent?.includes('Committed'), null, { timeout: WITHIN });
  await page.waitForSelector('.tray[data-node="node-6"][data-power="On"]', { timeout: 60_000 });
  await page.screenshot({ path: join(shots, 'rack-node6-on-1280x800.png'), fullPage: true });
  summary.poweredOn = 'node-6';

  // Every view, at both widths.
  const both = async (name) => {
    await page.screenshot({ path: join(shots, `${name}-1280x800.png`), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(shots, `${name}-390x844.png`), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
  };
  await page.click('.tray[data-node="node-6"] a.name');
  await page.waitForSelector('.sensor[data-sensor] figcaption', { timeout: WITHIN });
  summary.sensors = await page.$$eval('.sensor figcaption', (f) => f.map((e) => e.textContent));
  await page.waitForFunction(() => /Firmware\s*\d/.test(document.querySelector('dl.bmc')?.textContent ?? ''), null, { timeout: WITHIN });
  summary.bmc = await page.$eval('dl.bmc', (d) => d.textContent);
  await page.waitForFunction(() => document.querySelectorAll('.chart polyline[points*=","]').length > 0, null, { timeout: WITHIN });
  // The serial console: the tray's output (its boot log, then its shell), and a typed
  // line reaching the tray's UART (the shell answers it).
  await page.click('button.console-open');
  await page.waitForFunction(() => document.querySelector('pre.console')?.textContent?.includes('Booting Linux'), null, { timeout: WITHIN });
  await page.waitForFunction(() => document.querySelector('pre.console')?.textContent?.includes('root@node-6:~#'), null, { timeout: 60_000 });
  await page.fill('.console-input', 'racklet-dashboard-check');
  await page.press('.console-input', 'Enter');
  await page.waitForFunction(() => document.querySelector('pre.console')?.textContent?.includes('racklet-dashboard-check: not found'), null, { timeout: WITHIN });
  summary.console = true;
  await both('node');
  await page.click('header nav a[href="#/gitops"]');
  await page.waitForSelector('table.nodes tr[data-node="node-6"]', { timeout: WITHIN });
  summary.revision = await page.$eval('dl.source', (d) => d.textContent);
  await both('gitops');
  await page.click('header nav a[href="#/events"]');
  await page.waitForSelector('.events li', { timeout: WITHIN });
  await page.fill('.filters input[type=search]', 'node-6');
  await page.waitForFunction(() => [...document.querySelectorAll('.events li')].every((e) => e.textContent.includes('node-6')), null, { timeout: WITHIN });
  summary.node6Events = await page.$$eval('.events li', (l) => l.length);
  await both('events');
  summary.consoleErrors = violations.filter((v) => !v.includes('401') && !v.includes('403'));
  if (summary.consoleErrors.length > 0) throw new Error(`the page logged errors: ${summary.consoleErrors.join('; ')}`);
  summary.ok = true;
} finally {
  await browser.close();
  console.log(JSON.stringify(summary));
}
