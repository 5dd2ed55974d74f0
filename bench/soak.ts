/**
 * Soak test (not part of `bun test`): thousands of mixed requests against Minato as users run it
 * (`bun run start`, keys on), a third of them abandoned by their client at a random moment. Then
 * it checks that nothing is left behind: no request still open at the Ollama double, no stream,
 * slot or queue entry left in Minato's /metrics, one log line per request, and RSS back near
 * where it started.
 *
 *   bun run soak                      # 5,000 requests, 64 at a time
 *   bun run soak --requests=20000 --concurrency=128
 */
import { readFileSync } from 'node:fs';
import { startOllamaDouble } from '../tests/ollama-double';

const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const REQUESTS = arg('requests', 5000);
const CONCURRENCY = arg('concurrency', 64);
const KEY = 'soak-key-0123456789abcdef';
const ROOT = `${import.meta.dir}/..`;

const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const tokens = (n: number) => Array.from({ length: n }, (_, i) => `w${i} `);
const ollama = startOllamaDouble([
  { name: 'talk', tokens: tokens(40), tokenDelayMs: 3 },
  { name: 'quick', tokens: tokens(3) },
  { name: 'llava', capabilities: ['completion', 'vision'], tokens: tokens(10), tokenDelayMs: 2 },
  { name: 'flaky', tokens: tokens(20), tokenDelayMs: 2, errorAfterTokens: 10 },
  { name: 'drops', tokens: tokens(20), tokenDelayMs: 2, dropAfterTokens: 5 },
]);

// Minato as users run it, with its request log read line by line.
const proc = Bun.spawn(['bun', 'run', 'start'], {
  cwd: ROOT,
  env: {
    ...process.env,
    PORT: '0',
    OLLAMA_HOST: ollama.url,
    MINATO_API_KEYS: `${KEY} admin rpm=0`,
    MINATO_MAX_CONCURRENT_PER_MODEL: '16',
    MINATO_MAX_CONCURRENT: '48',
    MINATO_MAX_QUEUE: '1000',
    MINATO_MAX_QUEUE_PER_MODEL: '1000',
  },
  stdout: 'pipe',
  stderr: 'inherit',
});
let url = '';
let logLines = 0;
const logged = new Set<string>();
/** Every request sent: its kind, and whether its client abandoned it (it may then never have reached Minato). */
const sent = new Map<string, { kind: string; abandoned: boolean }>();
let sequence = 0;
(async () => {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of proc.stdout) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline = buffered.indexOf('\n');
    while (newline !== -1) {
      const line = JSON.parse(buffered.slice(0, newline)) as { msg: string; url?: string; request_id?: string };
      if (line.msg === 'listening') url = line.url!;
      if (line.msg === 'request') {
        logLines++;
        logged.add(line.request_id as string);
      }
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
    }
  }
})();
while (!url) await Bun.sleep(20);

/** `bun run start` runs the server as a child of `bun run`: measure that one. */
function serverPid(): number {
  const children = readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  return children.find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('src/index.ts')) ?? proc.pid;
}
const pid = serverPid();
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

const auth = { Authorization: `Bearer ${KEY}` };
/** `expect`: the status every answer of the kind that was not abandoned must have. */
type Kind = { name: string; weight: number; expect?: number; send: (signal: AbortSignal, id: string) => Promise<Response> };
const KINDS: Kind[] = [
  {
    name: 'sync',
    weight: 20,
    expect: 200,
    send: (signal, id) => fetch(`${url}/talk?message=hi`, { headers: { ...auth, 'X-Request-Id': id }, signal }),
  },
  {
    name: 'stream',
    weight: 25,
    send: (signal, id) => fetch(`${url}/stream/talk?message=hi`, { headers: { ...auth, 'X-Request-Id': id }, signal }),
  },
  {
    name: 'sse',
    weight: 10,
    send: (signal, id) =>
      fetch(`${url}/stream/talk?message=hi`, { headers: { ...auth, Accept: 'text/event-stream', 'X-Request-Id': id }, signal }),
  },
  {
    name: 'text',
    weight: 5,
    send: (signal, id) =>
      fetch(`${url}/stream/talk?message=hi`, { headers: { ...auth, Accept: 'text/plain', 'X-Request-Id': id }, signal }),
  },
  {
    name: 'quick',
    weight: 10,
    expect: 200,
    send: (signal, id) => fetch(`${url}/quick?message=hi`, { headers: { ...auth, 'X-Request-Id': id }, signal }),
  },
  {
    name: 'vision',
    weight: 8,
    expect: 200,
    send: (signal, id) => {
      const form = new FormData();
      form.append('images', new Blob([PNG], { type: 'image/png' }), 'a.png');
      return fetch(`${url}/stream/vision/llava?message=hi`, {
        method: 'POST',
        body: form,
        headers: { ...auth, 'X-Request-Id': id },
        signal,
      });
    },
  },
  {
    name: 'models',
    weight: 5,
    expect: 200,
    send: (signal, id) => fetch(`${url}/models_list`, { headers: { ...auth, 'X-Request-Id': id }, signal }),
  },
  {
    name: 'flaky',
    weight: 5,
    send: (signal, id) => fetch(`${url}/stream/flaky?message=hi`, { headers: { ...auth, 'X-Request-Id': id }, signal }),
  },
  {
    name: 'drops',
    weight: 4,
    send: (signal, id) => fetch(`${url}/drops?message=hi`, { headers: { ...auth, 'X-Request-Id': id }, signal }),
  },
  {
    name: 'unknown model',
    weight: 4,
    expect: 404,
    send: (signal, id) => fetch(`${url}/nope?message=hi`, { headers: { ...auth, 'X-Request-Id': id }, signal }),
  },
  {
    name: 'no key',
    weight: 4,
    expect: 401,
    send: (signal, id) => fetch(`${url}/talk?message=hi`, { headers: { 'X-Request-Id': id }, signal }),
  },
];
const totalWeight = KINDS.reduce((sum, kind) => sum + kind.weight, 0);
const pick = () => {
  let r = Math.random() * totalWeight;
  for (const kind of KINDS) {
    r -= kind.weight;
    if (r < 0) return kind;
  }
  return KINDS[0]!;
};

const stats = new Map<string, { sent: number; aborted: number; byStatus: Map<number, number> }>();
let fiveHundreds = 0;
let unexpectedErrors = 0;

async function one() {
  const kind = pick();
  const entry = stats.get(kind.name) ?? { sent: 0, aborted: 0, byStatus: new Map() };
  stats.set(kind.name, entry);
  entry.sent++;
  const controller = new AbortController();
  const abandon = Math.random() < 1 / 3;
  const timer = abandon ? setTimeout(() => controller.abort(), Math.random() * 150) : undefined;
  const id = `soak-${++sequence}`;
  const record = { kind: kind.name, abandoned: false };
  sent.set(id, record);
  try {
    const response = await kind.send(controller.signal, id);
    entry.byStatus.set(response.status, (entry.byStatus.get(response.status) ?? 0) + 1);
    if (response.status >= 500 && !['drops'].includes(kind.name)) fiveHundreds++;
    await response.arrayBuffer();
  } catch (error) {
    if (controller.signal.aborted) {
      entry.aborted++;
      record.abandoned = true;
    } else {
      unexpectedErrors++;
      if (unexpectedErrors <= 5) console.error(kind.name, error);
    }
  } finally {
    clearTimeout(timer);
  }
}

// Warm up, then take the baseline.
for (let i = 0; i < 200; i++) await one();
stats.clear();
await Bun.sleep(500);
const rssBefore = rssMb();
const logBefore = logLines;
const startedAt = performance.now();
let peak = rssBefore;
const sampler = setInterval(() => {
  peak = Math.max(peak, rssMb());
}, 100);

let next = 0;
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < REQUESTS) {
      next++;
      await one();
    }
  }),
);
const seconds = (performance.now() - startedAt) / 1000;
clearInterval(sampler);

// Everything abandoned must be released: wait (bounded) for the double and Minato to settle.
const settleDeadline = Date.now() + 10_000;
while ((ollama.pendingRequests > 0 || ollama.streaming > 0) && Date.now() < settleDeadline) await Bun.sleep(50);
await Bun.sleep(2000);
const metrics = await (await fetch(`${url}/metrics`, { headers: auth })).text();
const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? Number.NaN);
const rssAfter = rssMb();

const aborted = [...stats.values()].reduce((sum, entry) => sum + entry.aborted, 0);
console.log(
  `\nsoak: ${REQUESTS} requests, ${CONCURRENCY} at a time, in ${seconds.toFixed(1)} s (${(REQUESTS / seconds).toFixed(0)} req/s); a third told to abandon within 150 ms, ${aborted} of them cut off before their end\n`,
);
console.log('| kind | sent | abandoned | statuses |\n|---|---:|---:|---|');
for (const [name, entry] of stats) {
  const statuses = [...entry.byStatus]
    .sort(([a], [b]) => a - b)
    .map(([status, count]) => `${status}×${count}`)
    .join(' ');
  console.log(`| ${name} | ${entry.sent} | ${entry.aborted} | ${statuses} |`);
}
const wrongStatuses = KINDS.filter((kind) => kind.expect !== undefined).flatMap((kind) => {
  const entry = stats.get(kind.name);
  const other = [...(entry?.byStatus ?? [])].filter(([status]) => status !== kind.expect);
  return other.length === 0
    ? []
    : [`${kind.name}: ${other.map(([status, count]) => `${status}×${count}`).join(' ')} (expected ${kind.expect})`];
});
const unlogged = [...sent].filter(([id]) => !logged.has(id)).map(([, request]) => request);
const checks: [string, boolean, string][] = [
  [
    'no request left open at Ollama',
    ollama.pendingRequests === 0 && ollama.streaming === 0,
    `${ollama.pendingRequests} pending, ${ollama.streaming} streams`,
  ],
  [
    'no stream, slot or queue entry left in Minato',
    gauge('minato_streams_in_flight') === 0 && gauge('minato_generations_running') === 0 && gauge('minato_queue_waiting') === 0,
    `streams ${gauge('minato_streams_in_flight')}, slots ${gauge('minato_generations_running')}, queued ${gauge('minato_queue_waiting')}`,
  ],
  ['no 5xx but where Ollama failed', fiveHundreds === 0, `${fiveHundreds}`],
  [
    'each kind answered as it should (a wrong route or model shows here)',
    wrongStatuses.length === 0,
    wrongStatuses.length === 0 ? 'all' : wrongStatuses.join('; '),
  ],
  ['no client error other than its own abort', unexpectedErrors === 0, `${unexpectedErrors}`],
  [
    'one log line per request that reached Minato',
    unlogged.filter((request) => !request.abandoned).length === 0,
    `${logLines - logBefore} lines for ${REQUESTS} requests; not logged: ${unlogged.length} (${unlogged.filter((r) => r.abandoned).length} abandoned before Minato saw them${
      unlogged.some((r) => !r.abandoned)
        ? `, and ${unlogged
            .filter((r) => !r.abandoned)
            .map((r) => r.kind)
            .join(', ')} that were not`
        : ''
    })`,
  ],
  [
    'RSS back within 25 MB of the start',
    rssAfter - rssBefore <= 25,
    `${rssBefore.toFixed(0)} MB before, ${peak.toFixed(0)} MB peak, ${rssAfter.toFixed(0)} MB after`,
  ],
];
console.log('\n| check | result | measured |\n|---|---|---|');
for (const [name, ok, measured] of checks) console.log(`| ${name} | ${ok ? 'ok' : 'FAILED'} | ${measured} |`);

proc.kill('SIGTERM');
await proc.exited;
await ollama.close();
process.exit(checks.every(([, ok]) => ok) ? 0 : 1);
