import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { DEFAULT_MODELS, readChunks, sleep } from './helpers';
import { type OllamaDouble, startOllamaDouble } from './ollama-double';

// `bun run build`: one executable to copy to the GPU box. Built here, started against the double,
// and checked as a user would: /health, a streamed answer, /docs with its assets (embedded).
const dir = mkdtempSync(`${tmpdir()}/minato-build-`);
const binary = `${dir}/minato`;
let ollama: OllamaDouble;
let child: ReturnType<typeof Bun.spawn> | undefined;
let url = '';

beforeAll(async () => {
  const build = Bun.spawnSync(['bun', 'run', 'build'], { cwd: `${import.meta.dir}/..`, env: { ...process.env, MINATO_BUILD_OUT: binary } });
  if (build.exitCode !== 0) throw new Error(`bun run build failed: ${build.stderr.toString()}`);
  ollama = startOllamaDouble([
    ...DEFAULT_MODELS.map((model) => ({ ...model })),
    { name: 'paced', tokens: ['a', 'b', 'c', 'd'], tokenDelayMs: 30 },
  ]);
  // Started from another folder: nothing from the checkout (node_modules, swagger-ui-dist) is at hand.
  child = Bun.spawn([binary], {
    cwd: dir,
    env: { ...process.env, PORT: '0', OLLAMA_HOST: ollama.url, BUN_CONFIG_MAX_HTTP_REQUESTS: '16384' },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const decoder = new TextDecoder();
  let text = '';
  const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
  for (let waited = 0; !url && waited < 10_000; waited += 1) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value);
    url = /"msg":"listening","url":"([^"]+)"/.exec(text)?.[1] ?? '';
  }
  reader.releaseLock();
  if (!url) throw new Error(`the binary did not start: ${text}`);
});
afterAll(async () => {
  child?.kill();
  await child?.exited;
  await ollama.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('bun run build: a single executable', () => {
  test('is one file that serves /health, a streamed answer and /docs with its assets', async () => {
    expect(statSync(binary).isFile()).toBe(true);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const { chunks, text } = await readChunks(await fetch(`${url}/stream/paced?message=hi`));
    expect(chunks.length).toBeGreaterThan(1);
    expect(text).toContain('"done":true');
    const docs = await fetch(`${url}/docs`);
    expect(await docs.text()).toContain('swagger-ui-bundle.js');
    const js = await fetch(`${url}/docs/swagger-ui-bundle.js`);
    expect(js.status).toBe(200);
    expect((await js.arrayBuffer()).byteLength).toBeGreaterThan(500_000);
    expect((await fetch(`${url}/docs/swagger-ui.css`)).headers.get('content-type')).toStartWith('text/css');
  });

  test('started without BUN_CONFIG_MAX_HTTP_REQUESTS, it says what to set (there is no `bun run start` beside a binary)', async () => {
    const env: Record<string, string | undefined> = { ...process.env, PORT: '0', OLLAMA_HOST: ollama.url };
    delete env.BUN_CONFIG_MAX_HTTP_REQUESTS;
    const bare = Bun.spawn([binary], { cwd: dir, env, stdout: 'pipe', stderr: 'pipe' });
    try {
      const decoder = new TextDecoder();
      let out = '';
      const reader = (bare.stdout as ReadableStream<Uint8Array>).getReader();
      for (let i = 0; !out.includes('"msg":"listening"') && i < 1000; i++) {
        const { done, value } = await reader.read();
        if (done) break;
        out += decoder.decode(value);
      }
      reader.releaseLock();
      bare.kill();
      const warnings = await new Response(bare.stderr as ReadableStream<Uint8Array>).text();
      expect(warnings).toContain('set BUN_CONFIG_MAX_HTTP_REQUESTS=16384 in its environment');
      expect(warnings).not.toContain('bun run start');
      // Its header limit is built in: no warning about it.
      expect(warnings).not.toContain('--max-http-header-size');
    } finally {
      bare.kill();
      await bare.exited;
    }
  });

  test("carries the start script's header limit: a 40 KB prompt is served, not Bun's empty 431", async () => {
    const long = await fetch(`${url}/llama3.2?message=${'a'.repeat(40_000)}`);
    expect(long.status).toBe(200);
    await sleep(1);
  });
});
