import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { loadConfig } from '../src/config';
import { startServer } from '../src/server';
import { type Harness, json, readChunks, sleep, startHarness } from './helpers';
import { type DoubleModel, startOllamaDouble } from './ollama-double';

/**
 * Fault injection against the Ollama double over real sockets. For every fault and every way of
 * asking (a whole answer, an NDJSON stream, SSE): the client gets a clear error, the upstream
 * request is closed (nothing left pending at the double), and Minato goes on serving.
 */
const tokens = Array.from({ length: 8 }, (_, i) => `t${i} `);
const FAULTS: { name: string; model: DoubleModel; sync: { status: number; detail: RegExp }; inBand: RegExp }[] = [
  {
    name: 'connection dropped mid-stream',
    model: { name: 'drops', tokens, dropAfterTokens: 3 },
    sync: { status: 502, detail: /Lost the connection to Ollama|closed the connection/ },
    inBand: /Lost the connection to Ollama mid-stream|closed the stream before the answer was complete/,
  },
  {
    name: 'silence longer than the idle deadline',
    model: { name: 'hangs', tokens, hangAfterTokens: 3 },
    sync: { status: 504, detail: /sent nothing for 1 s .*MINATO_STREAM_IDLE_TIMEOUT/ },
    inBand: /sent nothing for 1 s \(MINATO_STREAM_IDLE_TIMEOUT\)/,
  },
  {
    name: 'a partial last line (a crash mid-write)',
    model: { name: 'partial', tokens, partialLineAfterTokens: 3 },
    sync: { status: 502, detail: /not JSON|before the answer was complete/ },
    inBand: /closed the stream before the answer was complete/,
  },
  {
    name: 'a line that is not JSON',
    model: { name: 'garbage', tokens, garbageAfterTokens: 3 },
    sync: { status: 502, detail: /a line that is not JSON.*OLLAMA_HOST/ },
    inBand: /not JSON/,
  },
  {
    name: "Ollama's error line mid-generation",
    model: { name: 'fails', tokens, errorAfterTokens: 3 },
    sync: { status: 502, detail: /Ollama failed while answering: an error was encountered/ },
    inBand: /an error was encountered while running the model/,
  },
];

let h: Harness;
beforeAll(() => {
  h = startHarness({ MINATO_STREAM_IDLE_TIMEOUT: '1' }, [{ name: 'llama3.2', tokens: ['ok'] }, ...FAULTS.map((fault) => fault.model)]);
});
afterAll(() => h.close());

/** Nothing left open at Ollama's end, and a healthy request still answered. */
async function expectRecovered() {
  await h.ollama.waitFor(() => h.ollama.pendingRequests === 0 && h.ollama.streaming === 0, 3000);
  const healthy = await fetch(`${h.url}/llama3.2?message=hi`);
  expect(healthy.status).toBe(200);
  expect((await json(healthy)).response).toBe('ok');
}

describe.each(FAULTS)('fault: $name', (fault) => {
  test('whole answer: a clear 5xx JSON error', async () => {
    const response = await fetch(`${h.url}/${fault.model.name}?message=hi`);
    expect(response.status).toBe(fault.sync.status);
    expect((await json(response)).detail).toMatch(fault.sync.detail);
    await expectRecovered();
  });

  test('NDJSON stream: the tokens so far, then an in-band error line', async () => {
    const response = await fetch(`${h.url}/stream/${fault.model.name}?message=hi`);
    expect(response.status).toBe(200);
    const { text } = await readChunks(response);
    const lines = text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines.slice(0, 3).map((line) => line.response)).toEqual(tokens.slice(0, 3));
    expect(lines.at(-1).error).toMatch(fault.inBand);
    await expectRecovered();
  });

  test('SSE: an `event: error` the EventSource can act on', async () => {
    const response = await fetch(`${h.url}/stream/${fault.model.name}?message=hi`, { headers: { Accept: 'text/event-stream' } });
    const { text } = await readChunks(response);
    const events = text.trim().split('\n\n');
    expect(events.at(-1)).toMatch(/event: error\ndata: \{"error":/);
    expect(events.at(-1)).toMatch(fault.inBand);
    await expectRecovered();
  });
});

describe('fault: bursts of 503 from Ollama', () => {
  test('each is a 503 with Retry-After while it lasts; the next request after it is served', async () => {
    h.ollama.busy = true;
    const burst = await Promise.all(Array.from({ length: 10 }, () => fetch(`${h.url}/llama3.2?message=hi`)));
    for (const response of burst) {
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      expect((await json(response)).detail).toContain('Retry after');
    }
    h.ollama.busy = false;
    await expectRecovered();
  });
});

describe('fault: Ollama restarting under load', () => {
  test('streams in flight end with an in-band error; requests during the restart get 502; after it, all is well', async () => {
    const model = { name: 'slow', tokens: Array.from({ length: 40 }, () => 'x'), tokenDelayMs: 25 };
    let ollama = startOllamaDouble([model]);
    const port = ollama.port;
    const config = loadConfig({ OLLAMA_HOST: ollama.url, MINATO_MAX_CONCURRENT_PER_MODEL: '8' });
    const { server } = startServer({ config, log: () => {} }, { port: 0, hostname: '127.0.0.1' });
    const url = `http://127.0.0.1:${server.port}`;
    try {
      const streams = await Promise.all(Array.from({ length: 6 }, () => fetch(`${url}/stream/slow?message=hi`)));
      const reading = streams.map((response) => readChunks(response));
      await sleep(150);
      await ollama.close(); // the restart: every connection cut
      const down = await fetch(`${url}/slow?message=hi`);
      expect(down.status).toBe(502);
      expect((await json(down)).detail).toContain('OLLAMA_HOST');
      for (const { text } of await Promise.all(reading)) {
        console.log(JSON.stringify(text.slice(-300)));
        expect(JSON.parse(text.trim().split('\n').at(-1)!).error).toMatch(/Lost the connection to Ollama mid-stream/);
      }
      ollama = startOllamaDouble([{ ...model, tokenDelayMs: 0 }], { port });
      const after = await fetch(`${url}/slow?message=hi`);
      expect(after.status).toBe(200);
      expect((await json(after)).response).toBe('x'.repeat(40));
    } finally {
      await server.stop(true);
      await ollama.close();
    }
  });

  test('connection refused: a 502 at once, naming OLLAMA_HOST', async () => {
    const config = loadConfig({ OLLAMA_HOST: '127.0.0.1:9' });
    const { server } = startServer({ config, log: () => {} }, { port: 0, hostname: '127.0.0.1' });
    try {
      const startedAt = Date.now();
      const response = await fetch(`http://127.0.0.1:${server.port}/stream/llama3.2?message=hi`);
      expect(Date.now() - startedAt).toBeLessThan(1000);
      expect(response.status).toBe(502);
      expect((await json(response)).code).toBe('upstream_unreachable');
      expect((await fetch(`http://127.0.0.1:${server.port}/health`)).status).toBe(200);
    } finally {
      await server.stop(true);
    }
  });
});
