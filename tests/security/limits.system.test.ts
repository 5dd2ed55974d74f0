import { afterEach, describe, expect, test } from 'bun:test';
import { connect } from 'node:net';
import { type Harness, json, sleep, startHarness, TINY_PNG } from '../helpers';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('size limits: each a clear 4xx with a JSON body', () => {
  test('a URL over MINATO_MAX_URL_BYTES is a 414; one under it is served', async () => {
    h = startHarness({ MINATO_MAX_URL_BYTES: '4096' });
    const long = await fetch(`${h.url}/llama3.2?message=${'a'.repeat(5000)}`);
    expect(long.status).toBe(414);
    const body = await json(long);
    expect(body.code).toBe('uri_too_long');
    expect(body.detail).toContain('MINATO_MAX_URL_BYTES');
    expect(h.ollama.requests).toHaveLength(0);
    expect((await fetch(`${h.url}/llama3.2?message=${'a'.repeat(3000)}`)).status).toBe(200);
  });

  test('headers over MINATO_MAX_HEADER_BYTES are a 431', async () => {
    h = startHarness({ MINATO_MAX_HEADER_BYTES: '2048' });
    const big = await fetch(`${h.url}/health`, { headers: { 'X-Padding': 'p'.repeat(3000) } });
    expect(big.status).toBe(431);
    expect((await json(big)).detail).toContain('MINATO_MAX_HEADER_BYTES');
    expect((await fetch(`${h.url}/health`, { headers: { 'X-Padding': 'p'.repeat(1000) } })).status).toBe(200);
  });

  test('a body over MINATO_MAX_BODY_BYTES on a route that takes no images is a 413, before Ollama is called', async () => {
    h = startHarness({ MINATO_MAX_BODY_BYTES: '1024', MINATO_MAX_CHAT_BODY_BYTES: '1024' });
    h.ollama.registry.set('tinyllama', { layers: 1 });
    const big = await fetch(`${h.url}/install/tinyllama`, { method: 'POST', body: 'x'.repeat(4096) });
    expect(big.status).toBe(413);
    expect((await json(big)).code).toBe('body_too_large');
    expect(h.ollama.requests).toHaveLength(0);

    // Chunked: no length to refuse up front, so it is counted while read and cut at the limit.
    const endless = () => {
      const counter = { sent: 0 };
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (counter.sent > 32 * 1024 * 1024) return controller.close();
          counter.sent += 16 * 1024;
          controller.enqueue(new Uint8Array(16 * 1024).fill(0x78));
          await sleep(1);
        },
      });
      return { stream, counter };
    };
    const upload = endless();
    const chunked = await fetch(`${h.url}/api/chat`, { method: 'POST', body: upload.stream, duplex: 'half' } as RequestInit);
    expect(chunked.status).toBe(413);
    expect((await json(chunked)).error).toContain('1024');
    expect(upload.counter.sent).toBeLessThan(4 * 1024 * 1024);
    expect(h.ollama.requests).toHaveLength(0);
    // A route that takes no body never reads one: the install is answered, the upload left unread.
    const ignored = endless();
    const install = await fetch(`${h.url}/install/tinyllama`, { method: 'POST', body: ignored.stream, duplex: 'half' } as RequestInit);
    expect(install.status).toBe(200);
    expect(ignored.counter.sent).toBeLessThan(4 * 1024 * 1024);
    const small = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(100));
        controller.close();
      },
    });
    const fine = await fetch(`${h.url}/install/tinyllama`, { method: 'POST', body: small, duplex: 'half' } as RequestInit);
    expect(fine.status).toBe(200);
  });
});

/** Opens a raw connection and writes `head`; returns the socket and everything it receives. */
function rawRequest(url: string, head: string) {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  let received = '';
  socket.on('data', (data) => {
    received += data.toString('latin1');
  });
  socket.on('error', () => {});
  socket.write(head);
  return { socket, received: () => received };
}

describe('slow clients do not pin memory or slots', () => {
  test('an upload slower than MINATO_BODY_TIMEOUT gets a 408, and its generation slot is given back', async () => {
    h = startHarness({ MINATO_BODY_TIMEOUT: '1', MINATO_MAX_CONCURRENT_PER_MODEL: '1' });
    const boundary = 'b0undary';
    const partHead = `--${boundary}\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n`;
    const total = partHead.length + 10_000;
    const { socket, received } = rawRequest(
      h.url,
      `POST /vision/llava?message=hi HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${total}\r\n\r\n${partHead}`,
    );
    const startedAt = Date.now();
    const trickle = setInterval(() => socket.write(TINY_PNG.subarray(0, 1)), 200);
    try {
      while (!received().includes('\r\n\r\n') && Date.now() - startedAt < 5000) await sleep(20);
      expect(received()).toStartWith('HTTP/1.1 408');
      expect(received()).toContain('MINATO_BODY_TIMEOUT');
      expect(Date.now() - startedAt).toBeLessThan(2500);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
    expect(h.ollama.requests.filter((r) => r.path === '/api/generate')).toHaveLength(0);
    // The slot it held is free again: the next vision request does not queue.
    const form = new FormData();
    form.append('images', new Blob([TINY_PNG], { type: 'image/png' }), 'a.png');
    const next = await fetch(`${h.url}/vision/llava?message=hi`, { method: 'POST', body: form });
    expect(next.status).toBe(200);
    expect(next.headers.get('x-queue-position')).toBe('0');
  });

  test('slow uploads hold no generation slot: with every upload trickling, a text request still starts at once', async () => {
    h = startHarness({ MINATO_BODY_TIMEOUT: '5', MINATO_MAX_CONCURRENT: '2', MINATO_MAX_CONCURRENT_PER_MODEL: '2' });
    const boundary = 'b0undary';
    const partHead = `--${boundary}\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n`;
    const uploads = Array.from({ length: 4 }, () =>
      rawRequest(
        h!.url,
        `POST /vision/llava?message=hi HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${partHead.length + 10_000}\r\n\r\n${partHead}`,
      ),
    );
    const trickle = setInterval(() => {
      for (const { socket } of uploads) socket.write(TINY_PNG.subarray(0, 1));
    }, 200);
    try {
      await sleep(500);
      const startedAt = Date.now();
      const text = await fetch(`${h.url}/llama3.2?message=hi`);
      expect(text.status).toBe(200);
      expect(text.headers.get('x-queue-position')).toBe('0');
      expect(Date.now() - startedAt).toBeLessThan(1000);
      const metrics = await (await fetch(`${h.url}/metrics`)).text();
      expect(metrics).toContain('\nminato_generations_running 0\n');
    } finally {
      clearInterval(trickle);
      for (const { socket } of uploads) socket.destroy();
    }
  });

  test('a streaming client that stops reading is cut off after MINATO_CLIENT_STALL_TIMEOUT, and Ollama stops', async () => {
    // Big, fast lines: the socket buffers between Minato and the client fill within a moment.
    const token = 'x'.repeat(64 * 1024);
    h = startHarness({ MINATO_CLIENT_STALL_TIMEOUT: '1' }, [{ name: 'big', tokens: Array.from({ length: 4000 }, () => token) }]);
    const { socket } = rawRequest(h.url, 'GET /stream/big?message=hi HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    socket.pause(); // never read
    try {
      await h.ollama.waitFor(() => h!.ollama.last('/api/generate')?.aborted === true, 15_000);
      const upstream = h.ollama.last('/api/generate')!;
      expect(upstream.completed).toBe(false);
      expect(upstream.linesWritten).toBeLessThan(4000);
      expect(h.ollama.streaming).toBe(0);
    } finally {
      socket.destroy();
    }
    // And Minato goes on serving.
    expect((await fetch(`${h.url}/health`)).status).toBe(200);
  }, 20_000);

  test('a client that trickles its headers (slowloris) is disconnected by Bun within about 12 s, holding nothing', async () => {
    h = startHarness();
    const { socket } = rawRequest(h.url, 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const startedAt = Date.now();
    let closedAfter = 0;
    socket.on('close', () => {
      closedAfter = Date.now() - startedAt;
    });
    const trickle = setInterval(() => closedAfter || socket.write('X-Slow: 1\r\n'), 2000);
    try {
      while (!closedAfter && Date.now() - startedAt < 20_000) await sleep(100);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
    expect(closedAfter).toBeGreaterThan(0);
    expect(closedAfter).toBeLessThan(15_000);
    expect((await fetch(`${h.url}/health`)).status).toBe(200);
  }, 25_000);
});
