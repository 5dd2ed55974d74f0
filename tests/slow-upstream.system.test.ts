import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { tmpdir } from 'node:os';
import { type Harness, startHarness, TINY_PNG } from './helpers';

// Bun.serve closes a connection that is silent for 10 s by default, and Ollama sends nothing
// while it loads a model. These run over real sockets, with the server exactly as
// `bun run start` configures it, a first byte 15 s late (Bun checks idle sockets on a coarse timer, so 11 s can slip through), and curl as the client: Bun's own
// fetch tolerates the cut in ways other clients do not (curl sees "Empty reply from server").
const LOAD_MS = 15_000;

let h: Harness;
beforeAll(() => {
  h = startHarness();
  h.ollama.models.set('cold-load', { name: 'cold-load', firstByteDelayMs: LOAD_MS, tokens: ['warm', ' now'] });
  h.ollama.registry.set('slow-registry', { layers: 1, tickDelayMs: LOAD_MS });
  h.ollama.models.set('slow-vision', {
    name: 'slow-vision',
    capabilities: ['completion', 'vision'],
    firstByteDelayMs: LOAD_MS,
    tokens: ['ok'],
  });
});
afterAll(() => h.close());

async function curl(...args: string[]) {
  const child = Bun.spawn(['curl', '-sS', '-N', '-m', '40', ...args], { stdout: 'pipe', stderr: 'pipe' });
  const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
  return { exitCode: await child.exited, stdout, stderr };
}

describe("a first byte later than Bun's 10 s idle timeout", () => {
  test('sync, streamed, vision and install requests all still succeed', async () => {
    const image = `${tmpdir()}/minato-slow-${process.pid}.png`;
    await Bun.write(image, TINY_PNG);
    const started = Date.now();
    const [sync, stream, vision, install] = await Promise.all([
      curl(`${h.url}/cold-load?message=hi`),
      curl(`${h.url}/stream/cold-load?message=hi`),
      curl('-F', `images=@${image}`, `${h.url}/vision/slow-vision?message=hi`),
      curl('-X', 'POST', `${h.url}/install/slow-registry`),
    ]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(LOAD_MS);
    for (const result of [sync, stream, vision, install]) expect(result).toMatchObject({ exitCode: 0, stderr: '' });
    expect(JSON.parse(sync.stdout)).toMatchObject({ response: 'warm now', done: true });
    expect(
      stream.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).response)
        .join(''),
    ).toBe('warm now');
    expect(JSON.parse(vision.stdout)).toMatchObject({ response: 'ok' });
    expect(JSON.parse(install.stdout)).toEqual({ status: 'success' });
  }, 45_000);
});
