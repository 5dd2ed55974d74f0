import { describe, expect, test } from 'bun:test';
import { type AddressInfo, createServer } from 'node:net';
import { ApiError } from '../../src/http/errors';
import { createOllamaClient, type FetchLike } from '../../src/ollama/client';

/** A fetch that never gets an answer, as when packets to Ollama's host are silently dropped. */
const blackHoleFetch: FetchLike = (_input, init) =>
  new Promise((_, reject) => init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))));

describe('createOllamaClient', () => {
  test('a host that never answers is a 502 naming OLLAMA_HOST within about a second, not after the first-byte deadline', async () => {
    // Port 9 on loopback refuses connections, so the probe fails the way a dead host would.
    const client = createOllamaClient({ baseUrl: 'http://127.0.0.1:9', fetch: blackHoleFetch });
    const started = Date.now();
    const error = await client
      .call('/api/generate', {}, { deadline: { ms: 60_000, setting: 'MINATO_FIRST_BYTE_TIMEOUT' } })
      .catch((e) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).statusCode).toBe(502);
    expect((error as ApiError).detail).toContain('OLLAMA_HOST');
    expect(Date.now() - started).toBeLessThan(1500);
  });

  test('an Ollama that takes the connection and resets it is reported as having dropped it, not as unreachable', async () => {
    const server = createServer((socket) => socket.once('data', () => socket.resetAndDestroy())).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const client = createOllamaClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
      const error = (await client
        .call('/api/generate', { model: 'm' }, { deadline: { ms: 10_000, setting: 'MINATO_FIRST_BYTE_TIMEOUT' } })
        .catch((e) => e)) as ApiError;
      expect(error.statusCode).toBe(502);
      expect(error.code).toBe('upstream_dropped');
      expect(error.detail).toContain('dropped the connection');
      expect(error.detail).not.toContain('Cannot reach');
    } finally {
      server.close();
    }
  });

  test('an Ollama that accepts the connection but is still loading is waited for', async () => {
    const server = Bun.serve({
      port: 0,
      idleTimeout: 0,
      fetch: async () => {
        await Bun.sleep(2000);
        return Response.json({ ok: true });
      },
    });
    try {
      const client = createOllamaClient({ baseUrl: `http://127.0.0.1:${server.port}` });
      const { response } = await client.call('/api/generate', {}, { deadline: { ms: 10_000, setting: 'MINATO_FIRST_BYTE_TIMEOUT' } });
      expect(response.status).toBe(200);
    } finally {
      await server.stop(true);
    }
  });

  test('sends JSON with only its own headers', async () => {
    let seen: Headers | undefined;
    const client = createOllamaClient({
      baseUrl: 'http://ollama.invalid:11434',
      fetch: async (input, init) => {
        seen = new Headers(init?.headers);
        expect(String(input)).toBe('http://ollama.invalid:11434/api/show');
        expect(init?.body).toBe('{"model":"x"}');
        return Response.json({});
      },
    });
    await client.call('/api/show', { model: 'x' }, { deadline: { ms: 1000, setting: 'X' } });
    expect([...seen!.keys()]).toEqual(['content-type']);
  });

  test('many requests waiting at once share one reachability probe instead of opening a connection each', async () => {
    let connections = 0;
    const listener = Bun.listen({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        open: () => {
          connections++;
        },
        data: () => {},
      },
    });
    try {
      // Requests go to a fetch that never answers; only the probes reach the listener.
      const client = createOllamaClient({ baseUrl: `http://127.0.0.1:${listener.port}`, fetch: blackHoleFetch, probeAfterMs: 100 });
      const controller = new AbortController();
      const waiting = Array.from({ length: 200 }, () =>
        client.call('/api/generate', {}, { signal: controller.signal, deadline: { ms: 10_000, setting: 'X' } }).catch(() => 'ended'),
      );
      await Bun.sleep(400);
      expect(connections).toBe(1); // one probe for 200 requests, and its success remembered
      controller.abort();
      expect(await Promise.all(waiting)).toEqual(Array(200).fill('ended'));
    } finally {
      listener.stop(true);
    }
  });
});
