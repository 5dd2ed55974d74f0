import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type ConfigError, loadConfig } from '../src/config';
import { DEFAULT_MODELS, type Harness, json, sleep, spawnMinato, startHarness } from './helpers';
import { type OllamaDouble, startOllamaDouble } from './ollama-double';

// What a newcomer meets in the first hour: start-up messages that say what is wrong and what to
// do, and errors that never paste another server's page.

const problemsOf = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (error) {
    return (error as ConfigError).problems;
  }
  return [];
};

describe('configuration errors say what is expected', () => {
  test('numbers, seconds and bytes: the expected form, not "received NaN"', () => {
    expect(problemsOf({ PORT: 'abc' })).toEqual(['PORT="abc": must be a whole number from 0 to 65535 (0 picks a free port)']);
    expect(problemsOf({ MINATO_FIRST_BYTE_TIMEOUT: '5m' })[0]).toContain('a number of seconds');
    expect(problemsOf({ MINATO_FIRST_BYTE_TIMEOUT: '5m' })[0]).toContain('not 5m');
    expect(problemsOf({ MINATO_MAX_BODY_BYTES: '64KB' })[0]).toContain('of bytes');
    expect(problemsOf({ MINATO_SHUTDOWN_GRACE: '-1' })[0]).toContain('seconds from 0 to 3600');
    for (const env of [{ PORT: 'abc' }, { MINATO_STREAM_IDLE_TIMEOUT: 'x' }, { MINATO_MAX_IMAGES: '1.5' }] as Record<string, string>[]) {
      expect(problemsOf(env).join()).not.toContain('NaN');
    }
    expect(loadConfig({ PORT: ' 8080 ', MINATO_FIRST_BYTE_TIMEOUT: '2.5' })).toMatchObject({
      port: 8080,
      firstByte: { ms: 2500, setting: 'MINATO_FIRST_BYTE_TIMEOUT' },
    });
  });

  test('an OLLAMA_HOST copied with /api (or /v1) is refused with the address to use instead', () => {
    const [problem] = problemsOf({ OLLAMA_HOST: 'http://localhost:11434/api' });
    expect(problem).toContain("give Ollama's address without it (http://localhost:11434)");
    expect(problemsOf({ OLLAMA_HOST: 'localhost:11434/v1/' })[0]).toContain('ends in /v1');
    expect(problemsOf({ OLLAMA_HOST: 'https://gpu.example/ollama' })).toEqual([]);
  });
});

describe('something other than Ollama at OLLAMA_HOST', () => {
  let impostor: ReturnType<typeof Bun.serve>;
  let h: Harness;
  let kind = 'html';
  beforeAll(() => {
    impostor = Bun.serve({
      port: 0,
      fetch: () =>
        kind === 'html'
          ? new Response(`<!doctype html><html><body><h1>Welcome to nginx!</h1>${'x'.repeat(500)}</body></html>`, {
              status: 404,
              headers: { 'Content-Type': 'text/html' },
            })
          : new Response('404 page not found', { status: 404, headers: { 'Content-Type': 'text/plain' } }),
    });
    h = startHarness({ OLLAMA_HOST: `http://127.0.0.1:${impostor.port}` });
  });
  afterAll(async () => {
    await h.close();
    impostor.stop(true);
  });

  test('an HTML page is described in one line and OLLAMA_HOST named, never pasted', async () => {
    kind = 'html';
    const response = await fetch(`${h.url}/llama3.2?message=hi`);
    expect(response.status).toBe(502);
    const body = await json(response);
    expect(body.code).toBe('upstream_not_ollama');
    expect(body.detail).toContain('HTTP 404 with a text/html body');
    expect(body.detail).toContain('OLLAMA_HOST');
    expect(body.detail).not.toContain('<');
    const ready = await json(await fetch(`${h.url}/ready`));
    expect(ready.detail).not.toContain('<');
    expect(ready.detail).not.toContain('..');
  });

  test('a router\'s bare "404 page not found" (a wrong path in OLLAMA_HOST) is not "model not installed"', async () => {
    kind = 'text';
    const response = await fetch(`${h.url}/llama3.2?message=hi`);
    expect(response.status).toBe(502);
    const body = await json(response);
    expect(body.code).toBe('upstream_not_ollama');
    expect(body.detail).toContain('with no path');
    expect(body.detail).not.toContain('install');
  });
});

describe('OLLAMA_HOST pointing at another Minato (with keys), or at nothing', () => {
  test("its 401 is a 502 that says OLLAMA_HOST is not Ollama, on every surface, never 'this route needs an API key'", async () => {
    const other = startHarness({ MINATO_API_KEYS: 'other-minato-key-0123456789' });
    const h = startHarness({ OLLAMA_HOST: other.url });
    try {
      const minato = await fetch(`${h.url}/llama3.2?message=hi`);
      expect(minato.status).toBe(502);
      const body = await json(minato);
      expect(body.code).toBe('upstream_not_ollama');
      expect(body.detail).toContain('asked Minato for credentials');
      expect(body.detail).toContain('not about the key you sent');
      const api = await fetch(`${h.url}/api/tags`);
      expect(api.status).toBe(502);
      expect((await json(api)).error).toContain('OLLAMA_HOST');
      const ready = await json(await fetch(`${h.url}/ready`));
      expect(ready.detail).toContain('asked Minato for credentials');
      expect(ready.detail).not.toStartWith('This route needs');
    } finally {
      await h.close();
      await other.close();
    }
  });

  test('/ready with Ollama down says what to check once', async () => {
    const h = startHarness({ OLLAMA_HOST: 'http://127.0.0.1:1' });
    try {
      const ready = await fetch(`${h.url}/ready`);
      expect(ready.status).toBe(503);
      const detail = (await json(ready)).detail as string;
      expect(detail).toContain('Cannot reach Ollama at http://127.0.0.1:1');
      expect(detail.split('Check that Ollama is running').length - 1).toBe(1);
    } finally {
      await h.close();
    }
  });
});

describe('unknown query parameters are accepted, but said', () => {
  test('a Warning header and the request log name them', async () => {
    const lines: Record<string, unknown>[] = [];
    const h = startHarness({}, DEFAULT_MODELS, { log: (line) => lines.push(JSON.parse(line)) });
    try {
      const response = await fetch(`${h.url}/llama3.2?message=hi&temprature=0.7&temperature=0.2`);
      expect(response.status).toBe(200);
      expect(response.headers.get('warning')).toBe('299 minato "Unknown query parameters ignored: temprature"');
      expect((h.ollama.last('/api/generate')!.body as { options?: Record<string, unknown> }).options).toEqual({ temperature: 0.2 });
      const stream = await fetch(`${h.url}/stream/llama3.2?message=hi&seed_=1`);
      expect(stream.headers.get('warning')).toContain('seed_');
      await stream.text();
      expect(lines.at(-2)!.ignored_params).toEqual(['temprature']);
      expect(lines.at(-1)!.ignored_params).toEqual(['seed_']);
      const clean = await fetch(`${h.url}/llama3.2?message=hi`);
      expect(clean.headers.get('warning')).toBeNull();
    } finally {
      await h.close();
    }
  });
});

describe('the 403 for a missing scope names it once', () => {
  test('admin routes say "admin" scope; generate routes "generate" or "admin"', async () => {
    const GEN = 'generate-only-key-0123456789';
    const h = startHarness({ MINATO_API_KEYS: `${GEN} id=gen` });
    try {
      const detail = (await json(await fetch(`${h.url}/install/llama3.2`, { method: 'POST', headers: { 'X-API-Key': GEN } }))).detail;
      expect(detail).toContain('the "admin" scope');
      expect(detail.match(/admin/g)).toHaveLength(1);
    } finally {
      await h.close();
    }
  });
});

describe('start-up tells the truth about Ollama', () => {
  let ollama: OllamaDouble;
  beforeAll(() => {
    ollama = startOllamaDouble(DEFAULT_MODELS);
  });
  afterAll(() => ollama.close());

  const lineWith = async (lines: string[], text: string) => {
    for (let waited = 0; waited < 5000 && !lines.some((line) => line.includes(text)); waited += 50) await sleep(50);
    return lines.find((line) => line.includes(text));
  };

  test("logs Ollama's version when it answers", async () => {
    const minato = await spawnMinato({ OLLAMA_HOST: ollama.url });
    try {
      const line = JSON.parse((await lineWith(minato.lines, '"msg":"ollama"'))!);
      expect(line).toMatchObject({ level: 'info', url: ollama.url, version: expect.any(String) });
    } finally {
      await minato.stop();
    }
  });

  test('warns, naming OLLAMA_HOST, when nothing answers, and serves anyway (Ollama may come later)', async () => {
    const minato = await spawnMinato({ OLLAMA_HOST: 'http://127.0.0.1:9' });
    try {
      const line = JSON.parse((await lineWith(minato.lines, 'ollama not ready'))!);
      expect(line.level).toBe('warn');
      expect(line.problem).toContain('OLLAMA_HOST');
      expect((await fetch(`${minato.url}/health`)).status).toBe(200);
    } finally {
      await minato.stop();
    }
  });

  test('a port already in use is one line naming PORT, and exit code 1', async () => {
    const taken = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('') });
    try {
      const result = Bun.spawnSync(['bun', 'run', 'src/index.ts'], {
        cwd: `${import.meta.dir}/..`,
        env: { ...process.env, PORT: String(taken.port), OLLAMA_HOST: ollama.url },
      });
      expect(result.exitCode).toBe(1);
      const stderr = result.stderr.toString();
      expect(stderr).toContain(`PORT=${taken.port}`);
      expect(stderr).toContain('already in use');
      expect(stderr).not.toContain('    at ');
    } finally {
      taken.stop(true);
    }
  });
});
