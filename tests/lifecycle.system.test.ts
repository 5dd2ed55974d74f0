import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { connect, type Socket } from 'node:net';
import { type OllamaDouble, startOllamaDouble } from './ollama-double';
import { sleep } from './helpers';

// Minato as its users run it (`bun run start`), in its own process, so that signals, exit codes
// and Bun's start-up flags are the real ones.
let ollama: OllamaDouble;
beforeAll(() => {
  ollama = startOllamaDouble([
    { name: 'short', tokens: Array.from({ length: 20 }, (_, i) => `s${i} `), tokenDelayMs: 50 },
    { name: 'long', tokens: Array.from({ length: 200 }, (_, i) => `l${i} `), tokenDelayMs: 50 },
    { name: 'cold', tokens: ['c'], firstByteDelayMs: 30_000 },
  ]);
});
afterAll(() => ollama.close());

async function startMinato(env: Record<string, string> = {}) {
  const proc = Bun.spawn(['bun', 'run', 'start'], {
    cwd: `${import.meta.dir}/..`,
    env: { ...process.env, PORT: '0', OLLAMA_HOST: ollama.url, ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const lines: Record<string, unknown>[] = [];
  const decoder = new TextDecoder();
  let buffered = '';
  (async () => {
    for await (const chunk of proc.stdout) {
      buffered += decoder.decode(chunk, { stream: true });
      let newline = buffered.indexOf('\n');
      while (newline !== -1) {
        lines.push(JSON.parse(buffered.slice(0, newline)));
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
      }
    }
  })();
  const deadline = Date.now() + 10_000;
  while (!lines.some((line) => line.msg === 'listening')) {
    if (Date.now() > deadline) throw new Error(`Minato did not start: ${await new Response(proc.stderr).text()}`);
    await sleep(20);
  }
  const url = lines.find((line) => line.msg === 'listening')!.url as string;
  return { proc, url, lines };
}

/** A kept-alive connection opened now, to send requests on after the listener has closed. */
function openConnection(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => resolve(socket));
    socket.on('error', reject);
  });
}

function requestOn(socket: Socket, path: string): Promise<string> {
  return new Promise((resolve) => {
    let received = '';
    const onData = (data: Buffer) => {
      received += data.toString();
      if (/\r\n\r\n[\s\S]*\}$/.test(received)) {
        socket.off('data', onData);
        resolve(received);
      }
    };
    socket.on('data', onData);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  });
}

const canConnect = (url: string) =>
  openConnection(url).then(
    (socket) => {
      socket.destroy();
      return true;
    },
    () => false,
  );

describe('graceful shutdown (SIGTERM)', () => {
  test('refuses new work and reports not ready, lets a running stream finish, then stops listening and exits 0', async () => {
    const { proc, url, lines } = await startMinato({ MINATO_SHUTDOWN_GRACE: '10' });
    const response = await fetch(`${url}/stream/short?message=hi`);
    const reader = response.body!.getReader();
    await reader.read();

    proc.kill('SIGTERM');
    await sleep(100);
    const ready = await requestOn(await openConnection(url), '/ready');
    expect(ready).toStartWith('HTTP/1.1 503');
    expect(ready).toContain('"code":"draining"');
    // Liveness and metrics still answer while draining (a probe must not restart a draining process).
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const metrics = await fetch(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('minato_requests_total');
    const refused = await fetch(`${url}/short?message=hi`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBeTruthy();
    expect(((await refused.json()) as { code: string }).code).toBe('shutting_down');
    expect(ollama.requests.filter((r) => r.path === '/api/generate')).toHaveLength(1);

    let text = '';
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    expect(text).toContain('"done":true');
    expect(await proc.exited).toBe(0);
    expect(await canConnect(url)).toBe(false);
    expect(lines.find((line) => line.msg === 'stopped')).toEqual(expect.objectContaining({ drained: true, cut_off: 0 }));
  }, 20_000);

  test('a stream still running at the end of MINATO_SHUTDOWN_GRACE is cut off, Ollama is told, and it exits 0', async () => {
    const { proc, url, lines } = await startMinato({ MINATO_SHUTDOWN_GRACE: '0.5' });
    const response = await fetch(`${url}/stream/long?message=hi`);
    const reader = response.body!.getReader();
    await reader.read();
    const signalledAt = Date.now();
    proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(3000);
    await ollama.waitFor(() => ollama.last('/api/generate')?.aborted === true);
    expect(ollama.last('/api/generate')!.completed).toBe(false);
    expect(lines.find((line) => line.msg === 'stopped')).toEqual(expect.objectContaining({ drained: false, cut_off: 1 }));
    await reader.cancel().catch(() => {});
  }, 20_000);

  test('past the grace period every client is told, in its own format, and every request is logged as cut off', async () => {
    const { proc, url, lines } = await startMinato({ MINATO_SHUTDOWN_GRACE: '0.5', MINATO_MAX_CONCURRENT_PER_MODEL: '16' });
    // Streams already running, in both formats that can carry an error, and whole answers still
    // waiting for Ollama's first byte (a cold model load).
    const ndjson = await fetch(`${url}/stream/long?message=hi`);
    const sse = await fetch(`${url}/stream/long?message=hi`, { headers: { Accept: 'text/event-stream' } });
    // The drop-in surfaces too: Ollama's /api/chat (NDJSON) and OpenAI's /v1 (SSE).
    const messages = [{ role: 'user', content: 'hi' }];
    const apiChat = await fetch(`${url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: 'long', messages }) });
    const v1 = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'long', messages, stream: true }),
    });
    const waiting = Array.from({ length: 10 }, () => fetch(`${url}/cold?message=hi`));
    const streamed = [ndjson, sse, apiChat, v1].map(async (response) => {
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      for (;;) {
        const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (done) return text;
        text += decoder.decode(value);
      }
    });
    await ollama.waitFor(() => ollama.requests.filter((r) => !r.completed && !r.aborted && r.method === 'POST').length >= 14);
    proc.kill('SIGTERM');

    const answers = await Promise.all(waiting);
    for (const answer of answers) {
      expect(answer.status).toBe(503);
      expect(((await answer.json()) as { code: string }).code).toBe('shutting_down');
    }
    const [ndjsonText, sseText, apiChatText, v1Text] = await Promise.all(streamed);
    expect(ndjsonText).toContain('"response":"l0 "');
    expect(ndjsonText!.trim().split('\n').at(-1)).toContain('"error":"Minato is shutting down');
    expect(sseText).toContain('event: error\ndata: {"error":"Minato is shutting down');
    expect(apiChatText).toContain('"content":"l0 "');
    expect(apiChatText!.trim().split('\n').at(-1)).toContain('"error":"Minato is shutting down');
    expect(v1Text).toContain('"content":"l0 "');
    expect(v1Text).toContain('Minato is shutting down; the answer was cut off');
    expect(await proc.exited).toBe(0);

    const logged = lines.filter((line) => line.msg === 'request');
    expect(logged).toHaveLength(14);
    for (const line of logged) {
      expect(line).toEqual(expect.objectContaining({ error: 'cut_off_by_shutdown', client_aborted: false }));
    }
    expect(logged.filter((line) => line.status === 503)).toHaveLength(10);
  }, 30_000);
});

describe('start-up flags of `bun run start`', () => {
  test("a 40 KB prompt in the URL is served, a longer URL gets Minato's JSON 414 rather than Bun's empty 431", async () => {
    const { proc, url } = await startMinato();
    try {
      const long = await fetch(`${url}/short?message=${'a'.repeat(40_000)}`);
      expect(long.status).toBe(200);
      const tooLong = await fetch(`${url}/short?message=${'a'.repeat(70_000)}`);
      expect(tooLong.status).toBe(414);
      expect((await tooLong.json()) as object).toEqual(expect.objectContaining({ code: 'uri_too_long' }));
    } finally {
      proc.kill('SIGTERM');
      await proc.exited;
    }
  }, 20_000);
});
