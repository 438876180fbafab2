// Builds the dashboard into crates/racklet-dashboard/dist (committed; the control plane
// embeds it): app.js (src/main.ts and what it imports, bundled and minified), app.css and
// index.html. `node build.mjs --check` builds into a temporary directory and fails if the
// committed files differ (scripts/test runs it, so the bundle never drifts from its
// source).
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '../crates/racklet-dashboard/dist');
const check = process.argv.includes('--check');
const out = check ? mkdtempSync(join(tmpdir(), 'racklet-dashboard-')) : dist;
mkdirSync(out, { recursive: true });

await esbuild.build({
  entryPoints: [join(here, 'src/main.ts')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2022',
  outfile: join(out, 'app.js'),
  legalComments: 'none',
  logLevel: 'warning',
});
await esbuild.build({
  entryPoints: [join(here, 'src/app.css')],
  bundle: true,
  minify: true,
  outfile: join(out, 'app.css'),
  logLevel: 'warning',
});
copyFileSync(join(here, 'src/index.html'), join(out, 'index.html'));

if (check) {
  const stale = ['app.js', 'app.css', 'index.html'].filter(
    (f) => !readFileSync(join(out, f)).equals(readFileSync(join(dist, f))),
  );
  if (stale.length > 0) {
    console.error(`crates/racklet-dashboard/dist is not built from dashboard/src (${stale.join(', ')}): run npm run build --prefix dashboard and commit it`);
    process.exit(1);
  }
}
for (const f of ['app.js', 'app.css', 'index.html']) {
  console.log(`${f}: ${readFileSync(join(out, f)).length} bytes`);
}
