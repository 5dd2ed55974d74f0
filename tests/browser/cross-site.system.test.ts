import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Browser } from 'playwright-core';
import { type Harness, startHarness } from '../helpers';
import { CHROMIUM, launchChromium } from './chromium';

// A real browser visiting a page from another site, which tries to use the GPU and install a
// model through a keyless Minato on this machine, as any page a user visits could. Debian's
// Chromium (installed by .ci/run) is driven by playwright-core; `evil.test` resolves to 127.0.0.1
// inside the browser only, so the page has a foreign origin while everything stays on loopback.

let h: Harness;
let browser: Browser | undefined;
let site: ReturnType<typeof Bun.serve>;
const logged: Record<string, unknown>[] = [];

const page = (minato: string) => `<!doctype html><script>
  window.results = (async () => {
    const out = {};
    // A no-cors request needs no permission to be sent: only the server can refuse it.
    for (const [name, url, init] of [
      ['pull', '${minato}/install/llama3.2', { method: 'POST', mode: 'no-cors' }],
      ['generate', '${minato}/llama3.2?message=hi', { mode: 'no-cors' }],
      ['form', '${minato}/install/llama3.2?x=1', { method: 'POST', mode: 'no-cors', body: new URLSearchParams({ a: 'b' }) }],
    ]) {
      try { out[name] = (await fetch(url, init)).type; } catch (e) { out[name] = 'error: ' + e.message; }
    }
    // Reading an answer needs CORS; it must fail.
    try { out.read = await (await fetch('${minato}/llama3.2?message=hi')).text(); } catch (e) { out.read = 'blocked'; }
    return out;
  })();
</script>`;

beforeAll(async () => {
  h = startHarness({}, undefined, { log: (line) => logged.push(JSON.parse(line)) });
  site = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: () => new Response(page(h.url), { headers: { 'Content-Type': 'text/html' } }),
  });
  if (CHROMIUM) browser = await launchChromium(['--host-resolver-rules=MAP evil.test 127.0.0.1']);
});
afterAll(async () => {
  await browser?.close();
  site.stop(true);
  await h.close();
});

async function visit(origin: string) {
  const tab = await browser!.newPage();
  try {
    await tab.goto(`${origin}/`);
    return (await tab.evaluate('window.results')) as Record<string, string>;
  } finally {
    await tab.close();
  }
}

const reached = (path: string) => h.ollama.requests.filter((r) => r.path === path).length;

describe.skipIf(!CHROMIUM)('a page from another site, in Chromium, against keyless Minato', () => {
  test('cannot start a pull or a generation with no-cors requests, nor read an answer', async () => {
    const results = await visit(`http://evil.test:${site.port}`);
    expect(results.pull).toBe('opaque'); // the browser did send it…
    expect(results.read).toBe('blocked');
    expect(reached('/api/pull')).toBe(0); // …and Minato refused it
    expect(reached('/api/generate')).toBe(0);
    const refused = logged.filter((line) => line.error === 'origin_not_allowed');
    expect(refused.length).toBeGreaterThanOrEqual(3);
    expect(refused.every((line) => line.status === 403)).toBe(true);
  }, 30_000);

  test('the same page served from this machine (a local dev server) may use it: the test can tell the two apart', async () => {
    const results = await visit(`http://localhost:${site.port}`);
    expect(results.pull).toBe('opaque');
    await h.ollama.waitFor(() => reached('/api/pull') >= 1);
    expect(reached('/api/generate')).toBeGreaterThanOrEqual(1);
  }, 30_000);
});
