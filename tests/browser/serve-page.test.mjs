// The page of `plex serve` in a real browser: Debian's headless Chromium,
// driven by playwright-core. It serves a temporary pool directory with the
// real `plex` binary, watches a pool on the page, feeds it from the CLI and
// from the page's feed box, fetches by seq, and saves a screenshot to
// target/browser/serve-page.png. Run by `bash tests/browser/run.sh`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const target = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(repo, 'target');
const plexBin = process.env.PLEX_BIN ?? join(target, 'debug', 'plex');
const chromiumBin = process.env.CHROMIUM ?? '/usr/bin/chromium';
const screenshot = join(target, 'browser', 'serve-page.png');

/** How long the page may take to show something (a bound, not a measurement). */
const WAIT_MS = 15000;

/** Runs `plex --dir DIR ARGS…` to completion; returns its stdout. */
function plex(dir, ...args) {
  return execFileSync(plexBin, ['--dir', dir, ...args], { encoding: 'utf8' });
}

/** Starts `plex serve` on a free port; resolves to {child, url}. */
async function serve(dir) {
  const child = spawn(plexBin, ['--dir', dir, 'serve', '--http', 'http://127.0.0.1:0', '--listen', 'tcp://127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise((resolveUrl, reject) => {
    child.once('exit', (code) => reject(new Error(`plex serve exited with ${code} before printing its URL`)));
    lines.once('line', resolveUrl);
  });
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  return { child, url };
}

/** Sends SIGTERM; resolves to the exit code. */
function stop(child) {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolveCode) => {
    child.once('exit', (code) => resolveCode(code));
    child.kill('SIGTERM');
  });
}

test('the page of plex serve, live in headless Chromium', async () => {
  assert.ok(existsSync(plexBin), `no plex binary at ${plexBin}: run \`cargo build -p plex-cli\` (run.sh does)`);
  assert.ok(
    existsSync(chromiumBin),
    `Chromium is missing at ${chromiumBin}: run \`bash tests/browser/install.sh\` (run.sh does)`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'plex-browser-'));
  let server = null;
  let browser = null;
  try {
    plex(dir, 'pool', 'create', '--size', '1M', 'demo', 'metrics');
    for (let n = 1; n <= 3; n += 1) plex(dir, 'feed', 'demo', JSON.stringify({ n, note: 'before the page' }), '--tag', 'setup');
    plex(dir, 'feed', 'metrics', '{"cpu":0.42}');
    server = await serve(dir);

    browser = await chromium.launch({
      executablePath: chromiumBin,
      headless: true,
      args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      // Failed requests are checked below, by URL.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
        problems.push(`console error: ${m.text()}`);
      }
    });
    const failed = [];
    page.on('response', (r) => {
      if (r.status() >= 400) failed.push(`${r.status()} ${new URL(r.url()).pathname}`);
    });
    page.setDefaultTimeout(WAIT_MS);

    await page.goto(server.url);
    assert.equal(await page.title(), 'plex serve');
    // The pool list: both pools with their counts and seq bounds.
    const demoRow = page.locator('tr[data-pool="demo"]');
    await demoRow.waitFor();
    assert.equal(await demoRow.locator('td').nth(1).textContent(), '3');
    assert.equal(await demoRow.locator('td').nth(2).textContent(), '1–3');
    await page.locator('tr[data-pool="metrics"]').waitFor();

    // Choose the pool: its backlog shows, and the tail goes live.
    await demoRow.locator('button').click();
    await page.locator('#tail-status', { hasText: 'live' }).waitFor();
    await page.locator('#messages article[data-seq="3"]').waitFor();
    assert.equal(await page.locator('#messages article').count(), 3);

    // A message fed from the CLI appears without a reload.
    const receipt = JSON.parse(plex(dir, 'feed', 'demo', '{"hello":"browser"}', '--tag', 'cli'));
    const fed = page.locator(`#messages article[data-seq="${receipt.seq}"]`);
    await fed.waitFor();
    assert.match(await fed.textContent(), /\{"hello":"browser"\}/);
    assert.match(await fed.locator('.tag').textContent(), /^cli$/);

    // Markup in a message is shown as text, never parsed.
    const markup = JSON.parse(plex(dir, 'feed', 'demo', '{"html":"<img src=x onerror=alert(1)><b>bold</b>"}'));
    const shown = page.locator(`#messages article[data-seq="${markup.seq}"]`);
    await shown.waitFor();
    assert.match(await shown.textContent(), /<img src=x onerror=alert\(1\)><b>bold<\/b>/);
    assert.equal(await page.locator('#messages img, #messages b').count(), 0);

    // The feed box: a JSON object with tags, then plain text.
    await page.fill('#feed-data', '{"from": "page", "ok": true}');
    await page.fill('#feed-tags', 'ui, test');
    await page.click('#feed-form button[type="submit"]');
    const result = page.locator('#feed-result', { hasText: /^Appended as #\d+\.$/ });
    await result.waitFor();
    const pageSeq = Number((await result.textContent()).match(/#(\d+)/)[1]);
    const stored = JSON.parse(plex(dir, 'fetch', 'demo', String(pageSeq)));
    assert.deepEqual(stored.data, { from: 'page', ok: true });
    assert.deepEqual(stored.meta.tags, ['ui', 'test']);
    await page.locator(`#messages article[data-seq="${pageSeq}"]`).waitFor();

    await page.fill('#feed-data', 'just a line of text');
    await page.fill('#feed-tags', '');
    await page.click('#feed-form button[type="submit"]');
    await page.locator('#feed-result', { hasText: `Appended as #${pageSeq + 1}.` }).waitFor();
    assert.deepEqual(JSON.parse(plex(dir, 'fetch', 'demo', String(pageSeq + 1))).data, { text: 'just a line of text' });

    // The list catches up with the new messages and shows a rate.
    await page.locator('tr[data-pool="demo"] td:nth-child(2)', { hasText: String(pageSeq + 1) }).waitFor();
    await page.locator('tr[data-pool="demo"] td:nth-child(5)', { hasText: '/s' }).waitFor();

    // The page switches pools.
    await page.locator('tr[data-pool="metrics"] button').click();
    await page.locator('#pool-title', { hasText: 'metrics' }).waitFor();
    await page.locator('#messages article', { hasText: '0.42' }).waitFor();
    await page.locator('tr[data-pool="demo"] button').click();
    await page.locator(`#messages article[data-seq="${pageSeq + 1}"]`).waitFor();
    await page.locator('#tail-status', { hasText: 'live' }).waitFor();

    // Fetch by seq, and the error envelope's message for a missing one
    // (first, so that the screenshot shows a fetched message).
    await page.fill('#fetch-seq', '999');
    await page.click('#fetch-form button[type="submit"]');
    await page.locator('#fetch-result', { hasText: 'NotFound: message not found' }).waitFor();
    await page.fill('#fetch-seq', String(receipt.seq));
    await page.click('#fetch-form button[type="submit"]');
    await page.locator('#fetch-result article', { hasText: 'browser' }).waitFor();

    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot });
    assert.deepEqual(problems, []);
    assert.deepEqual(failed, ['404 /v0/pools/demo/messages/999']);
    await browser.close();
    browser = null;

    assert.equal(await stop(server.child), 0, 'plex serve exits 0 on SIGTERM');
    server = null;
  } finally {
    if (browser) await browser.close();
    if (server) await stop(server.child);
    rmSync(dir, { recursive: true, force: true });
  }
});
