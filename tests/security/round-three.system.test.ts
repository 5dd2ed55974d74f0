import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { connect } from 'node:net';
import { DEFAULT_MODELS, type Harness, json, type MinatoProcess, sleep, spawnMinato, startHarness } from '../helpers';
import { imageHeader } from '../fixtures/images';
import { type OllamaDouble, startOllamaDouble } from '../ollama-double';

// What a stranger without a key, or one ordinary key, could do to Minato before round three:
// gigabytes of memory from bodies read before the key was checked, connections held open for
// good, generations slipping past the queue under `"Model"`. Each over real sockets; memory from
// a real Minato process's VmHWM.

const MiB = 1024 * 1024;
const KEY = 'round-three-generate-key-0123456789';
const METRICS_KEY = 'round-three-metrics-only-key-012345';

/** A `/api/chat` body of about `size` bytes: one long user message. */
function chatBody(size: number, model = 'llama3.2'): Uint8Array {
  const head = new TextEncoder().encode(`{"model":"${model}","stream":false,"messages":[{"role":"user","content":"`);
  const tail = new TextEncoder().encode('"}]}');
  const out = new Uint8Array(size).fill(0x61);
  out.set(head, 0);
  out.set(tail, size - tail.length);
  return out;
}

/**
 * `body` sent chunked (no Content-Length), 1 MiB at a time, counting what the server pulled; with
 * `holdAfterFirstMiB`, everything after the first MiB waits for that promise.
 */
function chunked(body: Uint8Array, holdAfterFirstMiB?: Promise<void>) {
  const counter = { sent: 0 };
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (counter.sent > 0 && holdAfterFirstMiB) await holdAfterFirstMiB;
      if (counter.sent >= body.length) return controller.close();
      const piece = body.subarray(counter.sent, counter.sent + MiB);
      counter.sent += piece.length;
      controller.enqueue(piece);
    },
  });
  return { stream, counter };
}

const post = (
  url: string,
  body: string | Uint8Array | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
) =>
  fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'application/json', ...headers }, duplex: 'half', signal } as RequestInit);

/**
 * Posts `body` chunked, its first MiB at once and the rest held back until the answer has come: a
 * server that answers while the upload is held back has answered without its body (one that
 * needed it would wait; the rest is let go after 10 s in any case, so such a test fails instead of
 * hanging). The status, and how much had been sent when the answer came.
 */
async function postHeldBack(url: string, body: Uint8Array, headers: Record<string, string> = {}) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const timer = setTimeout(release, 10_000);
  const upload = chunked(body, released);
  const abort = new AbortController();
  const response = await post(url, upload.stream, headers, abort.signal);
  const sentAtAnswer = upload.counter.sent;
  await response.arrayBuffer().catch(() => {});
  abort.abort();
  clearTimeout(timer);
  release();
  return { status: response.status, sentAtAnswer, headers: response.headers };
}

describe('bodies are read only after the key, its scope and the queue say yes (a real process, its peak memory)', () => {
  let ollama: OllamaDouble;
  let minato: MinatoProcess;
  beforeAll(async () => {
    ollama = startOllamaDouble(DEFAULT_MODELS.map((model) => ({ ...model })));
    minato = await spawnMinato({
      OLLAMA_HOST: ollama.url,
      MINATO_LOG_REQUESTS: 'false',
      MINATO_API_KEYS: `${KEY} generate id=team, ${METRICS_KEY} metrics id=scraper`,
    });
  });
  afterAll(async () => {
    await minato.stop();
    await ollama.close();
  });

  test('64 chunked 30 MiB uploads without a key, with a wrong key, or with a key lacking the scope: refused, unread, and memory stays flat', async () => {
    const body = chatBody(30 * MiB);
    await fetch(`${minato.url}/health`);
    const before = minato.memory().rss;
    minato.resetPeak();
    const paths = ['/api/chat', '/v1/chat/completions', '/chat/llama3.2', '/api/generate'];
    const headers: Record<string, string>[] = [
      {},
      { 'X-API-Key': 'not-a-key-at-all-0123456789' },
      { Authorization: `Bearer ${METRICS_KEY}` },
    ];
    const answers = await Promise.all(
      Array.from({ length: 64 }, (_, i) => postHeldBack(`${minato.url}${paths[i % 4]}`, body, headers[i % 3])),
    );
    for (const { status } of answers) expect([401, 403]).toContain(status);
    expect(answers.filter(({ status }) => status === 403).length).toBe(21);
    // Each answer came while its upload was held back after 1 MiB: the server never waited for a body.
    for (const { sentAtAnswer } of answers) expect(sentAtAnswer).toBeLessThanOrEqual(2 * MiB);
    const grew = minato.memory().peak - before;
    expect(grew).toBeLessThan(64 * MiB); // before round three: ≈ 5 GB
    expect(ollama.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
  }, 60_000);

  test('32 bodies of 30 MiB from one key fit MINATO_BODY_BUDGET (256 MiB): the rest get 503 with Retry-After before being read, never an OOM', async () => {
    const body = chatBody(30 * MiB);
    const before = minato.memory().rss;
    minato.resetPeak();
    const responses = await Promise.all(
      Array.from({ length: 32 }, () => post(`${minato.url}/api/chat`, body, { Authorization: `Bearer ${KEY}` })),
    );
    const statuses = responses.map((r) => r.status);
    const grew = minato.memory().peak - before;
    expect(statuses.every((status) => status === 200 || status === 503)).toBe(true);
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThanOrEqual(1);
    const refused = responses.filter((r) => r.status === 503);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    const error = await json(refused[0]!);
    // In Ollama's shape, on Ollama's surface.
    expect(error.error).toContain('MINATO_BODY_BUDGET');
    expect(Number(refused[0]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Before round three: 1,846 MB for the same 32 bodies.
    expect(grew).toBeLessThan(600 * MiB); // measured ≈ 430 MB
    for (const response of responses) await response.arrayBuffer().catch(() => {});
    // The budget is given back: one more body is served.
    expect((await post(`${minato.url}/api/chat`, body, { Authorization: `Bearer ${KEY}` })).status).toBe(200);
  }, 60_000);

  test("Minato's own /chat, which parses its body whole, counts it four times: 16 × 30 MiB stay bounded too", async () => {
    const head = new TextEncoder().encode('{"messages":[{"role":"user","content":"');
    const tail = new TextEncoder().encode('"}]}');
    const body = new Uint8Array(30 * MiB).fill(0x61);
    body.set(head, 0);
    body.set(tail, body.length - tail.length);
    const before = minato.memory().rss;
    minato.resetPeak();
    const responses = await Promise.all(
      Array.from({ length: 16 }, () => post(`${minato.url}/chat/llama3.2`, body, { Authorization: `Bearer ${KEY}` })),
    );
    const statuses = responses.map((r) => r.status);
    const grew = minato.memory().peak - before;
    for (const response of responses) await response.arrayBuffer().catch(() => {});
    expect(statuses.every((status) => status === 200 || status === 503)).toBe(true);
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThanOrEqual(1);
    expect(statuses.filter((status) => status === 503).length).toBeGreaterThanOrEqual(8);
    expect(grew).toBeLessThan(600 * MiB); // measured ≈ 180 MB
  }, 60_000);
});

describe('a full queue refuses before the body', () => {
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });

  test('with every slot busy and no room to wait, a 30 MiB upload to /api/chat or /chat is refused (503) without being read', async () => {
    h = startHarness({ MINATO_MAX_CONCURRENT: '1', MINATO_MAX_QUEUE: '0', MINATO_MAX_QUEUE_PER_MODEL: '0' }, [
      { name: 'slow', tokens: ['a', 'b', 'c'], tokenDelayMs: 400 },
      ...DEFAULT_MODELS,
    ]);
    const running = await fetch(`${h.url}/stream/slow?message=hi`);
    const reader = running.body!.getReader();
    await reader.read();
    for (const path of ['/api/chat', '/chat/llama3.2', '/v1/chat/completions']) {
      const refused = await postHeldBack(`${h.url}${path}`, chatBody(30 * MiB));
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBeTruthy();
      // Answered while the upload was held back after its first MiB.
      expect(refused.sentAtAnswer).toBeLessThanOrEqual(2 * MiB);
    }
    await reader.cancel();
  }, 20_000);
});

describe('idle connections are closed (Bun idle timer restored)', () => {
  let h: Harness;
  afterAll(async () => {
    await h.close();
  });

  /** Sends one keep-alive request on a fresh connection; resolves when the answer is in, with a promise of the close. */
  function keepAlive(url: string, target: string) {
    const { hostname, port } = new URL(url);
    const socket = connect({ host: hostname, port: Number(port) });
    let received = '';
    let answered!: () => void;
    const answer = new Promise<void>((resolve) => {
      answered = resolve;
    });
    const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now())));
    socket.on('data', (data) => {
      received += data.toString('latin1');
      // A whole answer (Content-Length) or a chunked one's last chunk.
      if (/\r\n0\r\n\r\n$/.test(received) || /Content-Length: 0\r\n\r\n$/i.test(received) || /\r\n\r\n[\s\S]*[}\n]$/.test(received))
        answered();
    });
    socket.on('error', () => {});
    socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    return { answer, closed, received: () => received };
  }

  test('after /health, /metrics, an unknown path, a whole answer and a stream, each keep-alive connection is closed within ~10 s of silence', async () => {
    h = startHarness();
    const targets = ['/health', '/metrics', '/x', '/llama3.2?message=hi', '/stream/llama3.2?message=hi', '/api/tags'];
    const connections = targets.flatMap((target) => Array.from({ length: 5 }, () => ({ target, ...keepAlive(h.url, target) })));
    await Promise.all(connections.map((connection) => connection.answer));
    const answeredAt = Date.now();
    for (const connection of connections) expect(connection.received()).toStartWith('HTTP/1.1 ');
    const closedAt = await Promise.race([
      Promise.all(connections.map((connection) => connection.closed)),
      sleep(18_000).then(() => undefined),
    ]);
    expect(closedAt).toBeDefined();
    for (const at of closedAt!) expect(at - answeredAt).toBeLessThan(16_000);
  }, 25_000);
});

describe('fields Ollama reads case-insensitively cannot slip past admission', () => {
  let h: Harness;
  beforeAll(() => {
    h = startHarness({ MINATO_API_KEYS: `${KEY} generate id=team` });
  });
  afterAll(async () => {
    await h.close();
  });
  const auth = { Authorization: `Bearer ${KEY}` };
  const sent = (path: string) => h.ollama.requests.filter((r) => r.path === path).length;

  test('"Model", "MODEL", a doubled model and the long-s "ſtream" are refused with a 400 naming the field, on every generation route; Ollama never sees them', async () => {
    const cases: [string, string, string][] = [
      ['/api/generate', '{"Model":"llama3.2","prompt":"hi","stream":false}', 'Model'],
      ['/api/chat', '{"MODEL":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":false}', 'MODEL'],
      ['/api/embed', '{"model":"nomic-embed-text","Model":"llama3.2","input":"hi"}', 'Model'],
      ['/api/chat', '{"model":"llama3.2","model":"llava","messages":[],"stream":false}', 'model'],
      ['/api/generate', '{"model":"llama3.2","prompt":"hi","\u017ftream":false}', '\u017ftream'],
      ['/v1/chat/completions', '{"Model":"llama3.2","messages":[{"role":"user","content":"hi"}]}', 'Model'],
      ['/v1/embeddings', '{"mOdEl":"nomic-embed-text","input":"hi"}', 'mOdEl'],
      [
        '/v1/chat/completions',
        '{"model":"llama3.2","messages":[],"stream":true,"stream_options":{"Include_Usage":false}}',
        'Include_Usage',
      ],
    ];
    for (const [path, body, field] of cases) {
      const before = sent(path);
      const response = await post(`${h.url}${path}`, body, auth);
      expect(response.status).toBe(400);
      const error = await json(response);
      const message = path.startsWith('/v1') ? error.error.message : error.error;
      expect(message).toContain(`"${path.startsWith('/v1') && field === 'Include_Usage' ? 'stream_options.' : ''}${field}"`);
      expect(sent(path)).toBe(before);
    }
  });

  test('an escaped key that is exactly "model" is the model, admitted and counted as such', async () => {
    const response = await post(`${h.url}/api/generate`, '{"mod\\u0065l":"llama3.2","prompt":"hi","stream":false}', auth);
    expect(response.status).toBe(200);
    expect((await json(response)).response).toBe('The sky is blue.');
    expect(response.headers.get('x-queue-position')).toBe('0');
  });

  test('a streamed /v1 chat still gets its usage asked for in place, the rest of the body relayed byte for byte', async () => {
    const body = '{"stream":true,"model":"llama3.2","messages":[{"role":"user","content":"hi \\u00e9"}],"stream_options":{"other":1}}';
    const response = await post(`${h.url}/v1/chat/completions`, body, auth);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain('data: [DONE]');
    expect(text).not.toContain('"usage"');
    const relayed = h.ollama.last('/v1/chat/completions')!.body as Record<string, unknown>;
    expect(relayed.stream_options).toEqual({ other: 1, include_usage: true });
    expect((relayed.messages as { content: string }[])[0]!.content).toBe('hi é');
  });
});

describe('an upload the client abandons', () => {
  test('is logged as a client abort (499), never a 500 "unhandled error", on every route with a JSON body', async () => {
    const lines: Record<string, unknown>[] = [];
    const h = startHarness({}, undefined, { log: (line) => lines.push(JSON.parse(line)) });
    try {
      const { hostname, port } = new URL(h.url);
      const paths = ['/api/chat', '/v1/chat/completions', '/chat/llama3.2', '/api/generate'];
      for (const path of paths) {
        const socket = connect({ host: hostname, port: Number(port) });
        socket.on('error', () => {});
        socket.write(
          `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"model":"llama3.2","messages":[`,
        );
        await sleep(100);
        socket.destroy();
      }
      for (let i = 0; i < 40 && lines.length < paths.length; i++) await sleep(50);
      expect(lines.map((line) => [line.path, line.status, line.client_aborted])).toEqual(paths.map((path) => [path, 499, true]));
      expect(h.ollama.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
    } finally {
      await h.close();
    }
  });
});

describe('a JSON Schema nested absurdly deep', () => {
  test('is a 422 naming the field on /chat (it overflowed the serialiser and was reported as "Cannot reach Ollama"), and a 400 on the relays', async () => {
    const h = startHarness();
    try {
      const deep = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`;
      const messages = '[{"role":"user","content":"hi"}]';
      for (const path of ['/chat/llama3.2', '/stream/chat/llama3.2']) {
        const response = await post(`${h.url}${path}`, `{"messages":${messages},"format":${deep}}`);
        expect(response.status).toBe(422);
        const body = await json(response);
        expect(body.detail[0].loc).toEqual(['body', 'format']);
        expect(body.detail[0].msg).toContain('nested more than 64 levels');
      }
      const tool = `{"type":"function","function":{"name":"f","parameters":${deep}}}`;
      expect((await post(`${h.url}/chat/llama3.2`, `{"messages":${messages},"tools":[${tool}]}`)).status).toBe(422);
      const relayed = await post(`${h.url}/api/chat`, `{"model":"llama3.2","messages":${messages},"format":${deep}}`);
      expect(relayed.status).toBe(400);
      expect((await json(relayed)).error).toContain('nested more than');
      // A schema of ordinary depth is passed on.
      const shallow = await post(
        `${h.url}/chat/llama3.2`,
        `{"messages":${messages},"format":{"type":"object","properties":{"a":{"type":"string"}}}}`,
      );
      expect(shallow.status).toBe(200);
      expect(h.ollama.requests.filter((r) => r.path === '/api/chat')).toHaveLength(1);
    } finally {
      await h.close();
    }
  });
});

describe('vision uploads count against MINATO_BODY_BUDGET too', () => {
  test('an upload over what is left is a 503 with Retry-After (declared length or chunked); the budget comes back after each answer', async () => {
    const h = startHarness({ MINATO_BODY_BUDGET: String(2 * MiB) });
    try {
      const image = (bytes: number) => {
        const out = new Uint8Array(bytes);
        out.set(imageHeader('png', 64, 64));
        return out;
      };
      const form = (bytes: number) => {
        const data = new FormData();
        data.append('images', new Blob([image(bytes)], { type: 'image/png' }), 'a.png');
        return data;
      };
      // 3 MiB declared: refused before a byte is read.
      const big = await fetch(`${h.url}/vision/llava?message=hi`, { method: 'POST', body: form(3 * MiB) });
      expect(big.status).toBe(503);
      expect((await json(big)).code).toBe('body_budget_exhausted');
      expect(big.headers.get('retry-after')).toBeTruthy();
      // Chunked JSON: refused once what arrived passes the budget.
      const base64 = Buffer.from(image(3 * MiB)).toString('base64');
      const upload = chunked(new TextEncoder().encode(JSON.stringify({ images: [base64] })));
      const chunkedBig = await post(`${h.url}/vision/llava?message=hi`, upload.stream);
      expect(chunkedBig.status).toBe(503);
      expect((await json(chunkedBig)).code).toBe('body_budget_exhausted');
      // Small ones, one after the other: each gives its share back.
      for (let i = 0; i < 3; i++) {
        const small = await fetch(`${h.url}/vision/llava?message=hi`, { method: 'POST', body: form(512 * 1024) });
        expect(small.status).toBe(200);
      }
      expect(h.ollama.requests.filter((r) => r.path === '/api/generate')).toHaveLength(3);
    } finally {
      await h.close();
    }
  });
});

describe('MINATO_BODY_TIMEOUT on every route with a body', () => {
  test('a stalled upload to /api/chat, /chat, /v1 or /api/blobs gets a 408 at the deadline, and Ollama is not left waiting', async () => {
    const h = startHarness({ MINATO_BODY_TIMEOUT: '1' });
    try {
      const { hostname, port } = new URL(h.url);
      const digest = `sha256:${'0'.repeat(64)}`;
      const stall = (path: string) =>
        new Promise<{ status: number; after: number }>((resolve) => {
          const socket = connect({ host: hostname, port: Number(port) });
          const startedAt = Date.now();
          let received = '';
          const done = () => resolve({ status: Number(received.slice(9, 12)), after: Date.now() - startedAt });
          socket.on('data', (data) => {
            received += data.toString('latin1');
            if (received.includes('\r\n\r\n')) done();
          });
          socket.on('close', done);
          socket.on('error', () => {});
          socket.write(
            `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"model":"llama3.2",`,
          );
          setTimeout(() => socket.destroy(), 6000);
        });
      const results = await Promise.all(['/api/chat', '/chat/llama3.2', '/v1/chat/completions', `/api/blobs/${digest}`].map(stall));
      for (const { status, after } of results) {
        expect(status).toBe(408);
        expect(after).toBeGreaterThanOrEqual(900);
        expect(after).toBeLessThan(4000);
      }
      // The blob's upstream upload was cut off, not left open at Ollama.
      await sleep(100);
      expect(h.ollama.pendingRequests).toBe(0);
    } finally {
      await h.close();
    }
  }, 15_000);
});
