import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { imageHeader } from './fixtures/images';
import { DEFAULT_MODELS, type MinatoProcess, sleep, spawnMinato } from './helpers';
import { type OllamaDouble, startOllamaDouble } from './ollama-double';

// Peak memory of a real Minato process (the kernel's VmHWM, reset before each request), for the
// uploads that could push a GPU box into the OOM killer. The double runs in this process.
let ollama: OllamaDouble;
let minato: MinatoProcess;
const MiB = 1024 * 1024;

beforeAll(async () => {
  ollama = startOllamaDouble(DEFAULT_MODELS.map((model) => ({ ...model })));
  minato = await spawnMinato({ OLLAMA_HOST: ollama.url, MINATO_LOG_REQUESTS: 'false' });
});
afterAll(async () => {
  await minato.stop();
  await ollama.close();
});

/** An image of `bytes` bytes: a complete PNG header, then bytes that do not compress. */
function image(bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  out.set(imageHeader('png', 640, 480));
  for (let i = 64; i < bytes; i++) out[i] = (i * 2654435761) >>> 24;
  return out;
}

/** Peak RSS added while `send` runs, from a reset mark; waits for the process to settle first. */
async function peakDuring(send: () => Promise<Response>): Promise<{ added: number; response: Response }> {
  Bun.gc(true);
  await sleep(300);
  minato.resetPeak();
  const before = minato.memory().rss;
  const response = await send();
  await response.arrayBuffer();
  return { added: minato.memory().peak - before, response };
}

const post = (body: RequestInit['body'], contentType?: string) =>
  fetch(`${minato.url}/vision/llava?message=hi`, {
    method: 'POST',
    body,
    headers: contentType ? { 'Content-Type': contentType } : {},
  });

describe('peak memory of one vision upload (VmHWM of the server process)', () => {
  test('a JSON body of 4 × 16 MiB images costs at most 2× its size, about what multipart costs', async () => {
    // Warm the route up so that loading its code is not counted.
    const small = Buffer.from(image(4096)).toString('base64');
    expect((await post(JSON.stringify({ images: [small] }), 'application/json')).status).toBe(200);

    const images = [image(16 * MiB), image(16 * MiB), image(16 * MiB), image(16 * MiB)];
    const json = new TextEncoder().encode(JSON.stringify({ images: images.map((bytes) => Buffer.from(bytes).toString('base64')) }));
    const viaJson = await peakDuring(() => post(json, 'application/json'));
    expect(viaJson.response.status).toBe(200);

    const form = new FormData();
    for (const [index, bytes] of images.entries()) form.append('images', new Blob([bytes as Uint8Array<ArrayBuffer>]), `${index}.png`);
    const viaForm = await peakDuring(() => post(form));
    expect(viaForm.response.status).toBe(200);

    const ratio = viaJson.added / json.length;
    console.log(
      `JSON body ${(json.length / MiB).toFixed(0)} MiB: peak +${(viaJson.added / MiB).toFixed(0)} MiB (${ratio.toFixed(2)}×); multipart ${(64).toFixed(0)} MiB of images: +${(viaForm.added / MiB).toFixed(0)} MiB`,
    );
    expect(ratio).toBeLessThanOrEqual(2);
  }, 60_000);

  test('a 200 MiB junk field is refused after its name: the process barely grows', async () => {
    const junk = new Uint8Array(200 * MiB).fill(0x61);
    const body = new Blob([new TextEncoder().encode('{"junk": "'), junk, new TextEncoder().encode('"}')]);
    const { added, response } = await peakDuring(() => post(body, 'application/json'));
    expect(response.status).toBe(422);
    expect(added).toBeLessThan(32 * MiB);
  }, 60_000);
});
