import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { imageHeader } from './fixtures/images';
import { type Harness, startHarness, TINY_PNG } from './helpers';

// The README's curl examples must work as written: every `curl` line in its sh blocks runs here
// against the sidecar (README's http://127.0.0.1:8000 pointed at the test server) and the double.
const README = await Bun.file(`${import.meta.dir}/../README.md`).text();
const commands = [...README.matchAll(/```sh\n([\s\S]*?)```/g)]
  .flatMap((block) => block[1]!.replace(/\\\n\s*/g, '').split('\n'))
  .map((line) => line.trim())
  .filter((line) => line.startsWith('curl '));

const USER_KEY = 'readme-key-0123456789abc';
const ADMIN_KEY = 'readme-admin-0123456789abc';
let h: Harness;
/** The same sidecar without keys, as the quick start runs it: commands that send no key run here. */
let keyless: Harness;
let dir: string;
beforeAll(async () => {
  // With keys on: the examples send them ($MINATO_KEY, $MINATO_ADMIN_KEY), and must work so.
  h = startHarness({ MINATO_API_KEYS: `${USER_KEY} id=readme, ${ADMIN_KEY} admin id=readme-admin` });
  keyless = startHarness();
  h.ollama.registry.set('llama3.2', { layers: 2 });
  h.ollama.registry.set('llama3.2:3b', { layers: 2 });
  dir = mkdtempSync(`${tmpdir()}/minato-readme-`);
  const jpeg = imageHeader('jpeg');
  await Promise.all([Bun.write(`${dir}/cat.jpg`, jpeg), Bun.write(`${dir}/a.png`, TINY_PNG), Bun.write(`${dir}/b.png`, TINY_PNG)]);
});
afterAll(async () => {
  await h.close();
  await keyless.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('README curl examples', () => {
  test('there are examples for every endpoint', () => {
    for (const path of [
      '/llama3.2?',
      '/stream/llama3.2?',
      '/vision/llava?',
      '/stream/vision/llava?',
      '/install/',
      '/models_list/',
      '/health',
      '/ready',
      '/metrics',
      '/openapi.json',
    ]) {
      expect(commands.some((command) => command.includes(path))).toBe(true);
    }
  });

  test('each one succeeds as written', async () => {
    expect(commands.length).toBeGreaterThan(10);
    for (const command of commands) {
      const target = /MINATO_(ADMIN_)?KEY/.test(command) ? h : keyless;
      const runnable = command.replace(/^curl /, 'curl --fail-with-body -sS -m 20 ').replaceAll('http://127.0.0.1:8000', target.url);
      const child = Bun.spawn(['bash', '-c', runnable], {
        cwd: dir,
        env: { ...process.env, MINATO_KEY: USER_KEY, MINATO_ADMIN_KEY: ADMIN_KEY },
        stdout: 'pipe',
        stderr: 'pipe',
      });
      const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
      const exitCode = await child.exited;
      expect({ command, exitCode, stderr }).toEqual({ command, exitCode: 0, stderr: '' });
      if (!command.includes('>')) expect(stdout.length).toBeGreaterThan(0);
    }
  }, 60_000);
});

describe('README configuration table', () => {
  test('documents every variable the configuration reads', async () => {
    const source = await Bun.file(`${import.meta.dir}/../src/config.ts`).text();
    const variables = [...source.matchAll(/^ {2}([A-Z][A-Z0-9_]+): /gm)].map((match) => match[1]!);
    expect(variables.length).toBeGreaterThan(20);
    const table = README.slice(README.indexOf('## Configuration'));
    for (const variable of variables.filter((name) => name !== 'MINATO_METRICS_KEY')) expect(table).toContain(`| \`${variable}\` |`);
  });
});
