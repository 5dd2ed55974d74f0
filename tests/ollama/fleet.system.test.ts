import { afterEach, describe, expect, test } from 'bun:test';
import { loadConfig } from '../../src/config';
import { startServer } from '../../src/server';
import { json, readChunks, sleep } from '../helpers';
import { type DoubleModel, type OllamaDouble, startOllamaDouble } from '../ollama-double';

/**
 * One Minato in front of several Ollama doubles (OLLAMA_HOSTS), each on its own socket with its
 * own installed and loaded models, as one Ollama per GPU would be.
 */

type Fleet = {
  url: string;
  doubles: OllamaDouble[];
  names: string[];
  logs: Record<string, unknown>[];
  /** Starts instance `index` again on its port (Ollama restarted), with these models. */
  restart: (index: number, models: DoubleModel[], loaded?: string[]) => void;
  close: () => Promise<void>;
};

const open: Fleet[] = [];
afterEach(async () => {
  for (const fleet of open.splice(0)) await fleet.close();
});

const slow = (name: string, tokens = 5, tokenDelayMs = 0): DoubleModel => ({
  name,
  capabilities: ['completion'],
  tokens: Array.from({ length: tokens }, (_, i) => ` t${i}`),
  tokenDelayMs,
});

function startFleet(instances: { models: DoubleModel[]; loaded: string[] }[], env: Record<string, string> = {}): Fleet {
  const doubles = instances.map(({ models, loaded }) => startOllamaDouble(models, { loaded }));
  const config = loadConfig({ OLLAMA_HOSTS: doubles.map((double) => double.url).join(','), MINATO_FLEET_REFRESH: '0.3', ...env });
  const logs: Record<string, unknown>[] = [];
  const { server, lifecycle } = startServer({ config, log: (line) => logs.push(JSON.parse(line)) }, { port: 0, hostname: '127.0.0.1' });
  const fleet: Fleet = {
    url: `http://127.0.0.1:${server.port}`,
    doubles,
    names: doubles.map((double) => `127.0.0.1:${double.port}`),
    logs,
    restart: (index, models, loaded) => {
      doubles[index] = startOllamaDouble(models, { port: doubles[index]!.port, loaded });
    },
    close: async () => {
      lifecycle.close();
      await server.stop(true);
      for (const double of doubles) await double.close().catch(() => {});
    },
  };
  open.push(fleet);
  return fleet;
}

const generateOn = (double: OllamaDouble) => double.requests.filter((request) => request.path === '/api/generate').length;
const ask = (url: string, model: string) =>
  fetch(`${url}/api/generate`, { method: 'POST', body: JSON.stringify({ model, prompt: 'Hi', stream: false }) });
/** A request for `model` on each surface: Ollama's /api/generate, Minato's GET /{model}, OpenAI's /v1 chat. */
const askEverySurface = async (url: string, model: string) => ({
  api: await ask(url, model),
  minato: await fetch(`${url}/${model}?message=hi`),
  openai: await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  }),
});
type Ready = { status: string; instances: { host: string; state: string }[] };
const ready = async (url: string) => (await (await fetch(`${url}/ready`)).json()) as Ready;

describe('routing by residency', () => {
  test('a request goes where its model is loaded, not where it would have to load', async () => {
    const fleet = startFleet([
      { models: [slow('llama3.2'), slow('qwen3')], loaded: ['qwen3'] },
      { models: [slow('llama3.2')], loaded: ['llama3.2'] },
    ]);
    for (let i = 0; i < 4; i++) expect((await ask(fleet.url, 'llama3.2')).status).toBe(200);
    expect(generateOn(fleet.doubles[1]!)).toBe(4);
    expect(generateOn(fleet.doubles[0]!)).toBe(0);
    // qwen3 is installed only on the first.
    expect((await ask(fleet.url, 'qwen3')).status).toBe(200);
    expect(generateOn(fleet.doubles[0]!)).toBe(1);
    // The request log says where each went.
    const lines = fleet.logs.filter((line) => line.msg === 'request' && line.path === '/api/generate');
    expect(lines.map((line) => line.instance)).toEqual([...Array(4).fill(fleet.names[1]), fleet.names[0]]);
    // Every surface routes the same way: Minato's chat, Ollama's /api/chat, OpenAI's /v1.
    const chats = () => fleet.doubles.map((double) => double.requests.filter((request) => request.path === '/api/chat').length);
    const messages = [{ role: 'user', content: 'Hi' }];
    expect(
      (
        await fetch(`${fleet.url}/chat/qwen3`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ messages }),
        })
      ).status,
    ).toBe(200);
    expect(
      (await fetch(`${fleet.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: 'llama3.2', messages, stream: false }) }))
        .status,
    ).toBe(200);
    expect(chats()).toEqual([1, 1]);
    const v1 = await fetch(`${fleet.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'llama3.2', messages, stream: true }),
    });
    expect(await v1.text()).toContain('data: [DONE]');
    expect(fleet.doubles[1]!.requests.filter((request) => request.path === '/v1/chat/completions').length).toBe(1);
    // Tokens are counted per instance.
    const metrics = await (await fetch(`${fleet.url}/metrics`)).text();
    expect(metrics).toContain(`minato_generated_tokens_total{model="llama3.2:latest",instance="${fleet.names[1]}"}`);
    expect(metrics).toContain(`minato_generated_tokens_total{model="qwen3:latest",instance="${fleet.names[0]}"}`);
    expect(metrics).toContain(`minato_instance_generations_running{instance="${fleet.names[0]}"} 0`);
  });

  test('with the model loaded on both, idle instances take turns and a busy one is avoided', async () => {
    const fleet = startFleet([
      { models: [slow('llama3.2')], loaded: ['llama3.2'] },
      { models: [slow('llama3.2')], loaded: ['llama3.2'] },
    ]);
    // One at a time: round-robin.
    for (let i = 0; i < 4; i++) expect((await ask(fleet.url, 'llama3.2')).status).toBe(200);
    expect([generateOn(fleet.doubles[0]!), generateOn(fleet.doubles[1]!)]).toEqual([2, 2]);
    // A long stream holds one instance; the next requests go to the other (fewest in flight).
    for (const double of fleet.doubles) double.models.get('llama3.2')!.tokenDelayMs = 100;
    const long = await fetch(`${fleet.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'llama3.2', prompt: 'Hi' }) });
    const reader = long.body!.getReader();
    await reader.read();
    const busy = fleet.doubles.findIndex((double) => double.streaming === 1);
    expect(busy).not.toBe(-1);
    fleet.doubles[1 - busy]!.models.get('llama3.2')!.tokenDelayMs = 0;
    const before = generateOn(fleet.doubles[1 - busy]!);
    await ask(fleet.url, 'llama3.2');
    await ask(fleet.url, 'llama3.2');
    expect(generateOn(fleet.doubles[1 - busy]!)).toBe(before + 2);
    await reader.cancel();
    // The stream's client went away: the busy instance stopped generating.
    await fleet.doubles[busy]!.waitFor(() => fleet.doubles[busy]!.streaming === 0);
  });

  test("a conversation's turns stay on one instance (Ollama's prompt cache), while conversations spread", async () => {
    const fleet = startFleet([
      { models: [slow('llama3.2')], loaded: ['llama3.2'] },
      { models: [slow('llama3.2')], loaded: ['llama3.2'] },
    ]);
    const chatsOn = () => fleet.doubles.map((double) => double.requests.filter((request) => request.path === '/api/chat').length);
    const history: { role: string; content: string }[] = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Name a colour.' },
    ];
    // Four turns, each repeating the conversation so far: round-robin alone would alternate.
    for (let turn = 0; turn < 4; turn++) {
      const response = await fetch(`${fleet.url}/api/chat`, {
        method: 'POST',
        body: JSON.stringify({ model: 'llama3.2', messages: history, stream: false }),
      });
      expect(response.status).toBe(200);
      history.push({ role: 'assistant', content: 'Blue.' }, { role: 'user', content: `And another? (${turn})` });
    }
    expect(chatsOn().sort()).toEqual([0, 4]);
    // The same conversation through Minato's own chat route goes to the same instance.
    const home = chatsOn().indexOf(4);
    const minato = await fetch(`${fleet.url}/chat/llama3.2`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: history }),
    });
    expect(minato.status).toBe(200);
    expect(chatsOn()[home]).toBe(5);
    // Many different conversations use both instances.
    for (let i = 0; i < 20; i++) {
      await fetch(`${fleet.url}/api/chat`, {
        method: 'POST',
        body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: `Question ${i}` }], stream: false }),
      });
    }
    expect(Math.min(...chatsOn())).toBeGreaterThan(0);
  });

  test('a model no instance has is a 404 in each surface, naming the instances', async () => {
    const fleet = startFleet([
      { models: [slow('llama3.2')], loaded: [] },
      { models: [slow('qwen3')], loaded: [] },
    ]);
    const { api, minato, openai } = await askEverySurface(fleet.url, 'mistral');
    expect(api.status).toBe(404);
    const apiBody = await json(api);
    expect(apiBody.error).toContain("'mistral' is not installed on any Ollama instance");
    expect(apiBody.error).toContain(fleet.names[0]);
    expect(minato.status).toBe(404);
    expect((await json(minato)).code).toBe('model_not_found');
    expect(openai.status).toBe(404);
    expect((await json(openai)).error.message).toContain('mistral');
    // Nothing reached either instance's generate.
    expect(generateOn(fleet.doubles[0]!) + generateOn(fleet.doubles[1]!)).toBe(0);
  });

  test('a model whose only instance is down is a 503 with Retry-After naming that instance (not a 404 sending an install elsewhere)', async () => {
    const fleet = startFleet([
      { models: [slow('llama3.2')], loaded: [] },
      { models: [slow('qwen3')], loaded: [] },
    ]);
    // Minato has seen where qwen3 is; then that instance stops.
    expect((await ask(fleet.url, 'qwen3')).status).toBe(200);
    await fleet.doubles[1]!.crash();
    for (let i = 0; i < 50 && (await ready(fleet.url)).instances[1]!.state !== 'down'; i++) await sleep(100);
    const { api, minato, openai } = await askEverySurface(fleet.url, 'qwen3');
    expect(api.status).toBe(503);
    expect(Number(api.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const apiBody = await json(api);
    expect(apiBody.error).toContain(fleet.names[1]);
    expect(apiBody.error).not.toContain('/install');
    expect(minato.status).toBe(503);
    expect((await json(minato)).code).toBe('model_unavailable');
    expect(openai.status).toBe(503);
    expect((await json(openai)).error.message).toContain(fleet.names[1]);
    // The model on the instance that answers is served as usual.
    expect((await ask(fleet.url, 'llama3.2')).status).toBe(200);
  });

  test('a model installed after Minato last looked is found on the miss', async () => {
    const fleet = startFleet(
      [
        { models: [slow('llama3.2')], loaded: [] },
        { models: [slow('qwen3')], loaded: [] },
      ],
      { MINATO_FLEET_REFRESH: '3600' },
    );
    expect((await ask(fleet.url, 'llama3.2')).status).toBe(200);
    fleet.doubles[1]!.models.set('gemma3', slow('gemma3'));
    expect((await ask(fleet.url, 'gemma3')).status).toBe(200);
    expect(generateOn(fleet.doubles[1]!)).toBe(1);
  });
});

describe('routes that concern every instance', () => {
  test('/models_list/, /api/tags, /api/ps and /v1/models are the union, each model with its hosts', async () => {
    const fleet = startFleet([
      { models: [slow('llama3.2'), slow('qwen3')], loaded: ['qwen3'] },
      { models: [slow('llama3.2'), slow('gemma3')], loaded: ['llama3.2'] },
    ]);
    const [a, b] = fleet.names as [string, string];
    const list = (await json(await fetch(`${fleet.url}/models_list/`))).models_list as { name: string; hosts: string[] }[];
    expect(Object.fromEntries(list.map((model) => [model.name, model.hosts]))).toEqual({
      'llama3.2:latest': [a, b],
      'qwen3:latest': [a],
      'gemma3:latest': [b],
    });
    const tags = (await json(await fetch(`${fleet.url}/api/tags`))).models as { name: string; hosts: string[] }[];
    expect(tags.map((model) => model.name).sort()).toEqual(['gemma3:latest', 'llama3.2:latest', 'qwen3:latest']);
    expect(tags.find((model) => model.name === 'llama3.2:latest')!.hosts).toEqual([a, b]);
    const ps = (await json(await fetch(`${fleet.url}/api/ps`))).models as { name: string; hosts: string[] }[];
    expect(Object.fromEntries(ps.map((model) => [model.name, model.hosts]))).toEqual({ 'qwen3:latest': [a], 'llama3.2:latest': [b] });
    // `?host=` narrows a listing to one instance.
    const one = (await json(await fetch(`${fleet.url}/api/tags?host=${encodeURIComponent(b!)}`))).models as { name: string }[];
    expect(one.map((model) => model.name).sort()).toEqual(['gemma3:latest', 'llama3.2:latest']);
    // /models_list/ too (it ignored `?host=`).
    const oneListed = (await json(await fetch(`${fleet.url}/models_list/?host=${encodeURIComponent(a)}`))).models_list as {
      name: string;
    }[];
    expect(oneListed.map((model) => model.name).sort()).toEqual(['llama3.2:latest', 'qwen3:latest']);
    expect((await fetch(`${fleet.url}/models_list?host=nowhere:1`)).status).toBe(400);
    const unknown = await fetch(`${fleet.url}/api/tags?host=nowhere:1`);
    expect(unknown.status).toBe(400);
    expect((await json(unknown)).error).toContain(a);
    const v1 = (await json(await fetch(`${fleet.url}/v1/models`))).data as { id: string }[];
    expect(v1.map((model) => model.id).sort()).toEqual(['gemma3:latest', 'llama3.2:latest', 'qwen3:latest']);
    // One model's details come from an instance that has it.
    expect((await fetch(`${fleet.url}/v1/models/gemma3:latest`)).status).toBe(200);
  });

  test('install pulls on every healthy instance, progress lines say which; ?host= pulls on one', async () => {
    const fleet = startFleet([
      { models: [slow('llama3.2')], loaded: [] },
      { models: [slow('qwen3')], loaded: [] },
    ]);
    for (const double of fleet.doubles) double.registry.set('phi4', { layers: 3, tickDelayMs: 10 });
    const streamed = await fetch(`${fleet.url}/install/phi4`, { method: 'POST', headers: { Accept: 'application/x-ndjson' } });
    expect(streamed.status).toBe(200);
    const { text } = await readChunks(streamed);
    const lines = text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(new Set(lines.filter((line) => line.host).map((line) => line.host))).toEqual(new Set(fleet.names));
    expect(lines.at(-1)).toEqual({ status: 'success' });
    for (const double of fleet.doubles) expect(double.models.has('phi4')).toBe(true);
    // Now installed on both, the model is listed on both at once (Minato refreshed after its pull).
    const list = (await json(await fetch(`${fleet.url}/models_list/`))).models_list as { name: string; hosts: string[] }[];
    expect(list.find((model) => model.name === 'phi4:latest')!.hosts).toEqual(fleet.names);

    for (const double of fleet.doubles) double.registry.set('gemma3', { layers: 1 });
    const one = await fetch(`${fleet.url}/install/gemma3?host=${encodeURIComponent(fleet.names[1]!)}`, { method: 'POST' });
    expect(await json(one)).toEqual({ status: 'success' });
    expect([fleet.doubles[0]!.models.has('gemma3'), fleet.doubles[1]!.models.has('gemma3')]).toEqual([false, true]);

    // Ollama's own /api/pull: the same, in Ollama's NDJSON.
    for (const double of fleet.doubles) double.registry.set('smollm', { layers: 1 });
    const api = await fetch(`${fleet.url}/api/pull`, { method: 'POST', body: JSON.stringify({ model: 'smollm' }) });
    const apiLines = (await api.text())
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(apiLines.filter((line) => line.status === 'success' && line.host).length).toBe(2);
    expect(apiLines.at(-1)).toEqual({ status: 'success' });
  });

  test('a pull that fails on one instance ends with an error naming it', async () => {
    const fleet = startFleet([
      { models: [slow('llama3.2')], loaded: [] },
      { models: [slow('qwen3')], loaded: [] },
    ]);
    fleet.doubles[0]!.registry.set('phi4', { layers: 1 });
    const response = await fetch(`${fleet.url}/install/phi4`, { method: 'POST' });
    expect(response.status).toBe(404);
    expect((await json(response)).detail).toContain(fleet.names[1]);
  });

  test('blobs go where ?host= says, so that /api/create finds them there', async () => {
    const fleet = startFleet([
      { models: [slow('llama3.2')], loaded: [] },
      { models: [slow('llama3.2')], loaded: [] },
    ]);
    const bytes = new TextEncoder().encode('GGUF model bytes');
    const digest = `sha256:${new Bun.CryptoHasher('sha256').update(bytes).digest('hex')}`;
    const second = encodeURIComponent(fleet.names[1]!);
    const stored = await fetch(`${fleet.url}/api/blobs/${digest}?host=${second}`, { method: 'POST', body: bytes });
    expect(stored.status).toBe(201);
    expect((await fetch(`${fleet.url}/api/blobs/${digest}?host=${second}`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${fleet.url}/api/blobs/${digest}?host=${encodeURIComponent(fleet.names[0]!)}`, { method: 'HEAD' })).status).toBe(
      404,
    );
    const blobRequests = (double: OllamaDouble) => double.requests.filter((request) => request.path.startsWith('/api/blobs/')).length;
    expect(fleet.doubles.map(blobRequests)).toEqual([1, 2]);
  });

  test('delete removes the model from every instance that has it', async () => {
    const fleet = startFleet([
      { models: [slow('llama3.2'), slow('qwen3')], loaded: [] },
      { models: [slow('llama3.2')], loaded: [] },
    ]);
    const deleted = await fetch(`${fleet.url}/api/delete`, { method: 'DELETE', body: JSON.stringify({ model: 'llama3.2' }) });
    expect(deleted.status).toBe(200);
    expect([fleet.doubles[0]!.models.has('llama3.2'), fleet.doubles[1]!.models.has('llama3.2')]).toEqual([false, false]);
    const again = await fetch(`${fleet.url}/api/delete`, { method: 'DELETE', body: JSON.stringify({ model: 'llama3.2' }) });
    expect(again.status).toBe(404);
    expect((await json(again)).error).toContain('not found');
  });
});

describe('admission per instance', () => {
  test('MINATO_MAX_CONCURRENT_PER_MODEL applies to each instance: two GPUs run twice the work', async () => {
    const fleet = startFleet(
      [
        { models: [slow('llama3.2', 10, 40)], loaded: ['llama3.2'] },
        { models: [slow('llama3.2', 10, 40)], loaded: ['llama3.2'] },
      ],
      { MINATO_MAX_CONCURRENT_PER_MODEL: '1' },
    );
    const streamOnce = async () => {
      const response = await fetch(`${fleet.url}/api/generate`, {
        method: 'POST',
        body: JSON.stringify({ model: 'llama3.2', prompt: 'Hi' }),
      });
      await response.text();
      return Number(response.headers.get('x-queue-position'));
    };
    const positions = await Promise.all([0, 1, 2].map(streamOnce));
    expect(positions.sort()).toEqual([0, 0, 1]);
    // Two ran at once, one on each instance; never two on one.
    expect(fleet.doubles.map((double) => double.peakStreaming)).toEqual([1, 1]);
    expect(generateOn(fleet.doubles[0]!) + generateOn(fleet.doubles[1]!)).toBe(3);
  });
});

describe('failover and recovery', () => {
  test('an instance that dies: the next request fails over at once, an in-flight stream ends in-band, /ready says so, and it comes back', async () => {
    const fleet = startFleet([
      { models: [slow('llama3.2', 40, 25)], loaded: ['llama3.2'] },
      { models: [slow('llama3.2', 40, 25)], loaded: ['llama3.2'] },
    ]);
    // A stream on one instance, then that instance dies mid-stream.
    const streaming = await fetch(`${fleet.url}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2', prompt: 'Hi' }),
    });
    const reader = streaming.body!.getReader();
    await reader.read();
    const dying = fleet.doubles.findIndex((double) => double.streaming === 1);
    const other = 1 - dying;
    await fleet.doubles[dying]!.crash();
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const last = JSON.parse(text.trim().split('\n').at(-1)!);
    expect(typeof last.error).toBe('string');

    // Every request now goes to the survivor, the first one included (a refused connection is retried there).
    fleet.doubles[other]!.models.get('llama3.2')!.tokenDelayMs = 0;
    const failedOver = Date.now();
    for (let i = 0; i < 3; i++) expect((await ask(fleet.url, 'llama3.2')).status).toBe(200);
    expect(Date.now() - failedOver).toBeLessThan(2000);
    expect(generateOn(fleet.doubles[other]!)).toBe(3);

    const state = await ready(fleet.url);
    expect(state.status).toBe('ready');
    const byHost = Object.fromEntries(state.instances.map((each) => [each.host, each.state]));
    expect(byHost[fleet.names[dying]!]).toBe('down');
    expect(byHost[fleet.names[other]!]).toBe('up');
    const metrics = await (await fetch(`${fleet.url}/metrics`)).text();
    expect(metrics).toContain(`minato_instance_up{instance="${fleet.names[dying]}"} 0`);

    // Ollama comes back on the same address: an active check finds it within a second or two.
    fleet.restart(dying, [slow('llama3.2', 40, 25)], ['llama3.2']);
    const back = Date.now();
    while ((await ready(fleet.url)).instances.find((each) => each.host === fleet.names[dying])?.state !== 'up') {
      if (Date.now() - back > 3000) throw new Error('the instance did not come back');
      await sleep(100);
    }
    for (let i = 0; i < 4; i++) expect((await ask(fleet.url, 'llama3.2')).status).toBe(200);
    expect(generateOn(fleet.doubles[dying]!)).toBeGreaterThan(0);
  });

  test('an instance that answers 500 before the first byte: retried once on the next one', async () => {
    const fleet = startFleet([
      { models: [{ ...slow('llama3.2'), crashOnLoad: true }], loaded: [] },
      { models: [slow('llama3.2')], loaded: [] },
    ]);
    // The first instance is the round-robin's first choice for one of two requests; each succeeds.
    for (let i = 0; i < 2; i++) {
      const response = await fetch(`${fleet.url}/llama3.2?message=hi`);
      expect(response.status).toBe(200);
      expect((await json(response)).response).toBe(' t0 t1 t2 t3 t4');
    }
    expect(generateOn(fleet.doubles[0]!)).toBeGreaterThanOrEqual(1);
  });

  test('no instance answers: 502 naming each one, and /ready is 503', async () => {
    const fleet = startFleet([
      { models: [slow('llama3.2')], loaded: [] },
      { models: [slow('llama3.2')], loaded: [] },
    ]);
    for (const double of fleet.doubles) await double.close();
    const response = await ask(fleet.url, 'llama3.2');
    expect(response.status).toBe(502);
    const { error } = await json(response);
    for (const double of fleet.doubles) expect(error).toContain(double.url);
    expect((await fetch(`${fleet.url}/ready`)).status).toBe(503);
    const list = await fetch(`${fleet.url}/models_list/`);
    expect(list.status).toBe(502);
  });
});

describe('configuration', () => {
  test('OLLAMA_HOSTS: each address in the forms OLLAMA_HOST takes; a bad or repeated one is a config error', () => {
    expect(loadConfig({ OLLAMA_HOSTS: 'gpu1, gpu2:11500,http://10.0.0.3' }).ollamaHosts).toEqual([
      'http://gpu1:11434',
      'http://gpu2:11500',
      'http://10.0.0.3:80',
    ]);
    expect(loadConfig({ OLLAMA_HOSTS: 'gpu1,gpu2', OLLAMA_HOST: 'gpu9' }).ollamaHost).toBe('http://gpu1:11434');
    expect(loadConfig({}).ollamaHosts).toEqual(['http://127.0.0.1:11434']);
    expect(() => loadConfig({ OLLAMA_HOSTS: 'gpu1,gpu1:11434' })).toThrow('twice');
    expect(() => loadConfig({ OLLAMA_HOSTS: 'gpu1,http://gpu2/api' })).toThrow('/api');
    expect(() => loadConfig({ OLLAMA_HOSTS: ' , ' })).toThrow('lists no address');
  });
});
