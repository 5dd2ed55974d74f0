/**
 * `bun run bench` — Minato against nginx (proxy_buffering off) and against Ollama called
 * directly, all in front of the same fast Ollama stand-in (bench/fast-ollama.ts), on loopback,
 * measured with wrk in one run, alternating targets round by round and taking medians.
 * Prints a table and (except with --quick) writes bench/RESULTS.md with the machine's description.
 *
 *   bun run bench            # full run, about 9 minutes
 *   bun run bench --quick    # smoke test for CI: checks the bench works, not its numbers
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import type { Subprocess } from 'bun';

const QUICK = process.argv.includes('--quick');
/** `--only=scale,vision` runs some workloads: stream, surfaces, body, sync, ttfb, modes, scale (with idle RSS), cadence, vision. */
const ONLY = process.argv
  .find((arg) => arg.startsWith('--only='))
  ?.slice(7)
  .split(',');
const wants = (workload: string) => !ONLY || ONLY.includes(workload);
const LINES = 100;
const ROOT = new URL('..', import.meta.url).pathname;
const ROUNDS = QUICK ? 1 : 3;
const SECONDS = QUICK ? 1 : 5;
const SCALE = QUICK ? { streams: 200, lines: 30, rate: 10 } : { streams: 5000, lines: 200, rate: 10 };
const IMAGE_BYTES = (QUICK ? 1 : 10) * 1024 * 1024;
const TTFB_REQUESTS = QUICK ? 5 : 40;
/** Realistic cadence: this many concurrent streams at 10 tokens/s, 30 tokens each. */
const CADENCE = QUICK ? [50] : [1000, 3000];
const work = mkdtempSync(`${tmpdir()}/minato-bench-`);
const children: Subprocess[] = [];

// ---------------------------------------------------------------- processes

function sh(command: string[]): { ok: boolean; out: string } {
  const result = Bun.spawnSync(command, { stdout: 'pipe', stderr: 'pipe' });
  return { ok: result.exitCode === 0, out: result.stdout.toString() + result.stderr.toString() };
}

function ensureInstalled(binary: string, debianPackage: string): boolean {
  if (sh(['which', binary]).ok) return true;
  if (process.getuid?.() !== 0) return false;
  console.log(`installing ${debianPackage} (Debian package) ...`);
  sh(['apt-get', 'update', '-qq']);
  return sh(['apt-get', 'install', '-y', '-qq', debianPackage]).ok && sh(['which', binary]).ok;
}

async function freePort(): Promise<number> {
  const server = Bun.serve({ port: 0, fetch: () => new Response() });
  const port = server.port as number;
  await server.stop(true);
  return port;
}

async function waitFor(url: string) {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (
      await fetch(url).then(
        (response) => response.status < 500,
        () => false,
      )
    )
      return;
    await Bun.sleep(100);
  }
  throw new Error(`${url} did not come up`);
}

function start(command: string[], env: Record<string, string>): Subprocess {
  const child = Bun.spawn(command, { cwd: ROOT, env: { ...process.env, ...env }, stdout: 'ignore', stderr: 'inherit' });
  children.push(child);
  return child;
}

/** A process and all its descendants, children first. */
function descendants(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
  return children.flatMap((child) => [...descendants(child), child]);
}

/** `bun run start` runs the server as a grandchild: find it, to measure the right process. */
function serverPid(rootPid: number): number {
  const server = descendants(rootPid).find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('src/index.ts');
    } catch {
      return false;
    }
  });
  return server ?? rootPid;
}

/**
 * Minato runs with auth on (every request carries the key; nginx and Ollama ignore it) and the
 * request log on (to /dev/null), as users run it; its admission limits are raised above the
 * bench's concurrency (5,000 streams of one model), since the bench measures the relay, not the queue.
 */
const BENCH_KEY = 'bench-key-0123456789abcdef';
const AUTH = { Authorization: `Bearer ${BENCH_KEY}` };
const BENCH_ENV = {
  MINATO_API_KEYS: `${BENCH_KEY} admin rpm=0`,
  MINATO_MAX_CONCURRENT: '20000',
  MINATO_MAX_CONCURRENT_PER_MODEL: '20000',
};

async function startMinato(ollamaPort: number, env: Record<string, string> = {}) {
  const port = await freePort();
  // As a user runs it: the start script (which raises Bun's limit on concurrent fetches).
  const child = start(['bun', 'run', 'start'], { PORT: String(port), OLLAMA_HOST: `127.0.0.1:${ollamaPort}`, ...BENCH_ENV, ...env });
  await waitFor(`http://127.0.0.1:${port}/health`);
  return { port, child, pid: serverPid(child.pid), url: `http://127.0.0.1:${port}` };
}

async function startNginx(ollamaPort: number) {
  if (!ensureInstalled('nginx', 'nginx-light')) return undefined;
  const port = await freePort();
  const prefix = `${work}/nginx`;
  sh(['mkdir', '-p', `${prefix}/logs`, `${prefix}/tmp`]);
  // One worker, like Minato's one JS thread; buffering off, as people run it in front of Ollama.
  writeFileSync(
    `${prefix}/nginx.conf`,
    `worker_processes 1;
worker_rlimit_nofile 30000;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log crit;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  client_max_body_size 100m;
  upstream ollama { server 127.0.0.1:${ollamaPort}; keepalive 1024; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://ollama;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host 127.0.0.1;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 600s;
    }
  }
}
`,
  );
  const child = start(['nginx', '-p', prefix, '-c', `${prefix}/nginx.conf`, '-g', 'daemon off;'], {});
  await waitFor(`http://127.0.0.1:${port}/api/version`);
  return { port, child, url: `http://127.0.0.1:${port}` };
}

function processStats(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { rssMb: kib('VmRSS') / 1024, peakRssMb: kib('VmHWM') / 1024, cpuSeconds: (Number(stat[11]) + Number(stat[12])) / 100 };
}

// ---------------------------------------------------------------- wrk

type WrkResult = { rps: number; p50: number; p99: number; requests: number; errors: number };

const luaFiles = new Map<string, string>();
function postScript(body: string): string {
  let file = luaFiles.get(body);
  if (!file) {
    file = `${work}/post-${luaFiles.size}.lua`;
    writeFileSync(file, `wrk.method = "POST"\nwrk.body = '${body}'\nwrk.headers["Content-Type"] = "application/json"\n`);
    luaFiles.set(body, file);
  }
  return file;
}

const toMs = (value: string, unit: string) => Number(value) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 }[unit] ?? 1);

async function wrk(target: Target, connections: number, seconds = SECONDS, extra: string[] = []): Promise<WrkResult> {
  const args = ['wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '60s', ...extra];
  if (target.body) args.push('-s', postScript(target.body));
  for (const [name, value] of Object.entries({ ...AUTH, ...target.headers })) args.push('-H', `${name}: ${value}`);
  args.push(target.url);
  const child = Bun.spawn(args, { stdout: 'pipe', stderr: 'pipe' });
  const out = await new Response(child.stdout).text();
  await child.exited;
  const latency = (percent: string) => {
    const match = new RegExp(`^\\s+${percent}%\\s+([\\d.]+)(us|ms|s|m)`, 'm').exec(out);
    return match ? toMs(match[1]!, match[2]!) : Number.NaN;
  };
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN),
    p50: latency('50'),
    p99: latency('99'),
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0),
    errors: non2xx + (socketErrors ? socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0),
  };
}

type Target = { name: string; url: string; body?: string; headers?: Record<string, string> };

const median = (values: number[]) => {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

/** Runs each target once per round, in alternating order, and keeps the medians. */
async function rounds(targets: Target[], run: (target: Target) => Promise<WrkResult>) {
  const results = new Map<string, WrkResult[]>(targets.map((target) => [target.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const target of order) results.get(target.name)!.push(await run(target));
  }
  return new Map(
    [...results].map(([name, list]) => [
      name,
      {
        rps: median(list.map((r) => r.rps)),
        p50: median(list.map((r) => r.p50)),
        p99: median(list.map((r) => r.p99)),
        requests: list.reduce((sum, r) => sum + r.requests, 0),
        errors: list.reduce((sum, r) => sum + r.errors, 0),
      },
    ]),
  );
}

// ---------------------------------------------------------------- report

type Row = { workload: string; minato: string; nginx: string; direct: string; result: string; target: string; ok: boolean | undefined };
const rows: Row[] = [];
const fmt = (value: number, digits = 1) => (Number.isNaN(value) ? 'n/a' : value.toFixed(digits));
function row(workload: string, minato: string, nginx: string, direct: string, result: string, target: string, ok: boolean | undefined) {
  rows.push({ workload, minato, nginx, direct, result, target, ok });
  console.log(`  ${workload}: ${result} (${target}) ${ok === undefined ? '' : ok ? 'ok' : 'MISSED'}`);
}

/** bench/causes.md: why each missed target is missed, as measured (kept by hand, copied into RESULTS.md). */
function causes(): string {
  try {
    return `\n${readFileSync(`${ROOT}bench/causes.md`, 'utf8')}`;
  } catch {
    return '';
  }
}

function table(): string {
  const header = '| workload | Minato | nginx | direct | result | target | met |\n|---|---|---|---|---|---|---|';
  const body = rows.map(
    (r) =>
      `| ${r.workload} | ${r.minato} | ${r.nginx} | ${r.direct} | ${r.result} | ${r.target} | ${r.ok === undefined ? '–' : r.ok ? 'yes' : '**no**'} |`,
  );
  return [header, ...body].join('\n');
}

// ---------------------------------------------------------------- workloads

async function main() {
  if (!ensureInstalled('wrk', 'wrk')) throw new Error('wrk is needed (apt-get install wrk)');
  const ollamaPort = await freePort();
  start(['bun', 'bench/fast-ollama.ts'], { PORT: String(ollamaPort) });
  const direct = `http://127.0.0.1:${ollamaPort}`;
  await waitFor(`${direct}/api/version`);
  const minato = await startMinato(ollamaPort);
  const minatoNoMetrics = await startMinato(ollamaPort, { MINATO_METRICS: 'false' });
  const nginx = await startNginx(ollamaPort);
  const barePort = await freePort();
  start(['bun', 'bench/bare-proxy.ts'], { PORT: String(barePort), OLLAMA_PORT: String(ollamaPort) });
  const bare = `http://127.0.0.1:${barePort}`;
  await waitFor(`${bare}/health`);
  // The floor for a relay that reads the body in JavaScript (as any relay that looks at lines must).
  const jsFloorPort = await freePort();
  start(['bun', 'bench/bare-proxy.ts'], {
    PORT: String(jsFloorPort),
    OLLAMA_PORT: String(ollamaPort),
    JS_RELAY: '1',
    BUN_CONFIG_MAX_HTTP_REQUESTS: '16384',
  });
  const jsFloor = `http://127.0.0.1:${jsFloorPort}`;
  await waitFor(`${jsFloor}/health`);
  console.log(`bench: ${QUICK ? 'quick' : 'full'} run; wrk ${ROUNDS} round(s) of ${SECONDS} s; nginx ${nginx ? 'on' : 'not available'}`);

  const generate = (model: string) => JSON.stringify({ model, prompt: 'hi', stream: true });
  const threeWay = (model: string, minatoPath: string, barePath = '/stream'): Target[] => [
    { name: 'minato', url: `${minato.url}${minatoPath}` },
    { name: 'bare', url: `${bare}${barePath}?model=${model}` },
    ...(nginx ? [{ name: 'nginx', url: `${nginx.url}/api/generate`, body: generate(model) }] : []),
    { name: 'direct', url: `${direct}/api/generate`, body: generate(model) },
  ];

  // 1. Streaming throughput: 100-line NDJSON answers, 32 connections.
  if (wants('stream')) {
    const stream = await rounds(
      [
        ...threeWay(`bench-${LINES}x0`, `/stream/bench-${LINES}x0?message=hi`),
        { name: 'js', url: `${jsFloor}/stream?model=bench-${LINES}x0` },
      ],
      (t) => wrk(t, 32),
    );
    const s = (name: string) => stream.get(name);
    const bareRatio = s('minato')!.rps / s('bare')!.rps;
    row(
      '1. streaming, 100 lines, 32 conns (req/s; lines/s)',
      `${fmt(s('minato')!.rps, 0)}; ${fmt(s('minato')!.rps * (LINES + 1), 0)}`,
      nginx ? `${fmt(s('nginx')!.rps, 0)}; ${fmt(s('nginx')!.rps * (LINES + 1), 0)}` : 'n/a',
      `${fmt(s('direct')!.rps, 0)}; ${fmt(s('direct')!.rps * (LINES + 1), 0)}`,
      `Minato/bare ${fmt(bareRatio, 2)}× (Minato/nginx ${nginx ? fmt(s('minato')!.rps / s('nginx')!.rps, 2) : 'n/a'}×), errors ${s('minato')!.errors}`,
      '≥ 0.85× the bare pipe',
      bareRatio >= 0.85 && s('minato')!.errors === 0,
    );
    row(
      '1b. bare Bun pipe (fetch → Response(body), no features); JS-relay floor',
      `${fmt(s('bare')!.rps, 0)}; JS relay ${fmt(s('js')!.rps, 0)}`,
      nginx ? fmt(s('nginx')!.rps, 0) : 'n/a',
      fmt(s('direct')!.rps, 0),
      `bare/nginx ${nginx ? fmt(s('bare')!.rps / s('nginx')!.rps, 2) : 'n/a'}×; JS relay/bare ${fmt(s('js')!.rps / s('bare')!.rps, 2)}×; Minato/JS relay ${fmt(s('minato')!.rps / s('js')!.rps, 2)}×`,
      'reported',
      undefined,
    );
  }

  // 1c–1e. The drop-in surfaces against the bare pipe making the same upstream call.
  if (wants('surfaces')) {
    const model = `bench-${LINES}x0`;
    const messages = [{ role: 'user', content: 'hi' }];
    const surfaces = [
      {
        label: '1c. /api/generate stream, 100 lines, 32 conns (req/s)',
        minato: { name: 'minato', url: `${minato.url}/api/generate`, body: JSON.stringify({ model, prompt: 'hi' }) },
        api: 'generate',
        target: 0.9,
      },
      {
        label: '1d. /api/chat stream, 100 lines, 32 conns (req/s)',
        minato: { name: 'minato', url: `${minato.url}/api/chat`, body: JSON.stringify({ model, messages }) },
        api: 'chat',
        target: 0.9,
      },
      {
        label: '1e. /v1/chat/completions SSE, 100 events, 32 conns (req/s)',
        minato: { name: 'minato', url: `${minato.url}/v1/chat/completions`, body: JSON.stringify({ model, messages, stream: true }) },
        api: 'v1',
        target: 0.85,
      },
    ];
    for (const surface of surfaces) {
      const result = await rounds(
        [
          surface.minato,
          { name: 'bare', url: `${bare}/stream?model=${model}&api=${surface.api}` },
          { name: 'js', url: `${jsFloor}/stream?model=${model}&api=${surface.api}` },
        ],
        (t) => wrk(t, 32),
      );
      const m = result.get('minato')!;
      const b = result.get('bare')!;
      const j = result.get('js')!;
      const ratio = m.rps / b.rps;
      row(
        surface.label,
        fmt(m.rps, 0),
        '',
        '',
        `Minato/bare ${fmt(ratio, 2)}× (bare ${fmt(b.rps, 0)}, JS relay ${fmt(j.rps, 0)} = ${fmt(j.rps / b.rps, 2)}× bare), errors ${m.errors}`,
        `≥ ${surface.target}× the bare pipe`,
        ratio >= surface.target && m.errors === 0,
      );
    }
  }

  // 1f. What a relayed body costs Minato before it goes to Ollama: the byte scan for the fields
  // Minato reads (round three: one reading of a body, as Go's decoder would) against what it did
  // before, decoding the whole body to a string and parsing it (in this process, same bodies).
  if (wants('body')) {
    const { scanFields } = await import('../src/http/json-fields');
    const fields = ['model', 'stream', 'messages'];
    for (const size of [1024, 1024 * 1024, 16 * 1024 * 1024]) {
      const content = 'a'.repeat(size);
      const bytes = new TextEncoder().encode(JSON.stringify({ model: 'llama3.2', stream: true, messages: [{ role: 'user', content }] }));
      const iterations = Math.max(QUICK ? 2 : 5, Math.round((QUICK ? 2e6 : 2e7) / bytes.length));
      const time = (work: () => unknown) => {
        work();
        const started = performance.now();
        for (let i = 0; i < iterations; i++) work();
        return ((performance.now() - started) * 1000) / iterations;
      };
      const decoder = new TextDecoder();
      // Only `model` and `stream` parsed, as on /api/chat with one instance (messages only with several).
      const scan = time(() => {
        const found = scanFields(bytes, fields);
        return [found.get('model'), found.get('stream')];
      });
      const parse = time(() => JSON.parse(decoder.decode(bytes)));
      row(
        `1f. relayed body fields, ${size >= 1024 * 1024 ? `${size / 1024 / 1024} MiB` : `${size / 1024} KiB`} (µs a body)`,
        `scan ${fmt(scan, 1)}`,
        '',
        '',
        `scan/whole parse ${fmt(scan / parse, 2)}× (whole parse ${fmt(parse, 1)} µs)`,
        'reported (cost of the field scan vs the parse it replaced)',
        undefined,
      );
    }
  }

  // 2. Added latency of a small sync call, at 1 and 32 connections.
  if (wants('sync')) {
    for (const connections of [1, 32]) {
      const sync = await rounds(threeWay('bench-1x0', '/bench-1x0?message=hi', '/sync'), (t) => wrk(t, connections));
      const m = sync.get('minato')!;
      const d = sync.get('direct')!;
      const n = sync.get('nginx');
      const b = sync.get('bare')!;
      const addedP50 = m.p50 - d.p50;
      const addedP99 = m.p99 - d.p99;
      const bareAdded = b.p50 - d.p50;
      row(
        `2. small sync call, ${connections} conn (p50 / p99 ms)`,
        `${fmt(m.p50, 2)} / ${fmt(m.p99, 2)}`,
        n ? `${fmt(n.p50, 2)} / ${fmt(n.p99, 2)}` : 'n/a',
        `${fmt(d.p50, 2)} / ${fmt(d.p99, 2)}`,
        `added p50 ${fmt(addedP50, 2)} ms = ${fmt(addedP50 / bareAdded, 1)}× bare Bun's, p99 ${fmt(addedP99, 2)} ms${n ? ` (nginx adds ${fmt(n.p50 - d.p50, 2)} / ${fmt(n.p99 - d.p99, 2)}` : ' ('}; bare Bun adds ${fmt(bareAdded, 2)} / ${fmt(b.p99 - d.p99, 2)})`,
        connections === 32 ? "added p50 ≤ 1.5× the bare pipe's added p50" : 'reported',
        connections === 32 ? addedP50 <= 1.5 * bareAdded && m.errors === 0 : undefined,
      );
    }
  }

  // 3. Added time to first byte on a stream at a realistic token rate (30 tokens/s).
  if (wants('ttfb')) {
    const ttfb = async (target: Target) => {
      const started = performance.now();
      const response = await fetch(
        target.url,
        target.body ? { method: 'POST', body: target.body, headers: { 'Content-Type': 'application/json' } } : { headers: AUTH },
      );
      const reader = response.body!.getReader();
      await reader.read();
      const elapsed = performance.now() - started;
      await reader.cancel();
      return elapsed;
    };
    const ttfbTargets = threeWay('bench-50x30', '/stream/bench-50x30?message=hi');
    const ttfbTimes = new Map<string, number[]>(ttfbTargets.map((t) => [t.name, []]));
    for (let i = 0; i < TTFB_REQUESTS; i++)
      for (const target of i % 2 ? ttfbTargets : [...ttfbTargets].reverse()) ttfbTimes.get(target.name)!.push(await ttfb(target));
    const tm = median(ttfbTimes.get('minato')!);
    const td = median(ttfbTimes.get('direct')!);
    const tn = nginx ? median(ttfbTimes.get('nginx')!) : Number.NaN;
    const tb = median(ttfbTimes.get('bare')!);
    row(
      '3. time to first byte at 30 tokens/s (median ms)',
      fmt(tm, 2),
      fmt(tn, 2),
      fmt(td, 2),
      `added ${fmt(tm - td, 2)} ms (nginx adds ${fmt(tn - td, 2)}, the bare Bun pipe ${fmt(tb - td, 2)})`,
      'added ≤ 1 ms',
      tm - td <= 1,
    );
  }

  // 6. SSE and text modes against the NDJSON pipe, and 7. the cost of metrics.
  if (wants('modes')) {
    const modes = await rounds(
      [
        { name: 'ndjson', url: `${minato.url}/stream/bench-${LINES}x0?message=hi` },
        { name: 'sse', url: `${minato.url}/stream/bench-${LINES}x0?message=hi`, headers: { Accept: 'text/event-stream' } },
        { name: 'text', url: `${minato.url}/stream/bench-${LINES}x0?message=hi`, headers: { Accept: 'text/plain' } },
        { name: 'no-metrics', url: `${minatoNoMetrics.url}/stream/bench-${LINES}x0?message=hi` },
      ],
      (t) => wrk(t, 32),
    );
    const ndjson = modes.get('ndjson')!.rps;
    for (const mode of ['sse', 'text'] as const) {
      const ratio = modes.get(mode)!.rps / ndjson;
      row(
        `6. ${mode.toUpperCase()} mode vs NDJSON pipe (req/s)`,
        `${fmt(modes.get(mode)!.rps, 0)} vs ${fmt(ndjson, 0)}`,
        '',
        '',
        `${fmt(ratio, 2)}×`,
        '≥ 0.8×',
        ratio >= 0.8 && modes.get(mode)!.errors === 0,
      );
    }
    const metricsRatio = ndjson / modes.get('no-metrics')!.rps;
    row(
      '7. metrics on vs off (req/s)',
      `${fmt(ndjson, 0)} vs ${fmt(modes.get('no-metrics')!.rps, 0)}`,
      '',
      '',
      `${fmt(metricsRatio, 3)}×`,
      '≥ 0.97× (costs ≤ 3%)',
      metricsRatio >= 0.97,
    );
  }

  // Idle RSS, 4. scale and 5. vision each on a fresh process, so that peaks are their own.
  if (wants('scale')) {
    const fresh = await startMinato(ollamaPort);
    await fetch(`${fresh.url}/stream/bench-2x0?message=hi`, { headers: AUTH }).then((r) => r.text());
    await Bun.sleep(500);
    const idle = processStats(fresh.pid).rssMb;
    row('idle RSS (MB, after one request)', fmt(idle, 1), '', '', `${fmt(idle, 1)} MB`, '≤ 50 MB', idle <= 50);

    // 4. Scale: thousands of concurrent slow streams, through Minato and through nginx. wrk
    // runs for twice a stream's length, so that a stream slowed by the machine's two cores can
    // still finish; every connection's first stream must.
    const scaleSeconds = SCALE.lines / SCALE.rate;
    const model = `bench-${SCALE.lines}x${SCALE.rate}`;
    const scaleRun = async (target: Target, pid: number) => {
      const before = processStats(pid);
      let peak = before.rssMb;
      const sampler = setInterval(() => {
        peak = Math.max(peak, processStats(pid).rssMb);
      }, 200);
      const started = performance.now();
      const result = await wrk(target, SCALE.streams, Math.ceil(scaleSeconds * 2 + 5), ['--timeout', `${Math.ceil(scaleSeconds * 3)}s`]);
      clearInterval(sampler);
      const after = processStats(pid);
      const cpu = ((after.cpuSeconds - before.cpuSeconds) / ((performance.now() - started) / 1000)) * 100;
      return { ...result, peak: Math.max(peak, after.peakRssMb), cpu };
    };
    const m = await scaleRun({ name: 'minato', url: `${fresh.url}/stream/${model}?message=hi` }, fresh.pid);
    const workerPid = nginx ? descendants(nginx.child.pid)[0] : undefined;
    const n =
      nginx && workerPid
        ? await scaleRun({ name: 'nginx', url: `${nginx.url}/api/generate`, body: generate(model) }, workerPid)
        : undefined;
    const describe = (r: typeof m) =>
      `${r.requests} done, ${r.errors} errors, p50 ${fmt(r.p50 / 1000, 1)} s; peak RSS ${fmt(r.peak, 0)} MB, CPU ${fmt(r.cpu, 0)}%`;
    // The floor for any relay that reads the body in JavaScript (as line handling must): the bare
    // proxy in its JS_RELAY mode, on a fresh process.
    const jsPort = await freePort();
    const jsRelay = start(['bun', 'bench/bare-proxy.ts'], {
      PORT: String(jsPort),
      OLLAMA_PORT: String(ollamaPort),
      JS_RELAY: '1',
      BUN_CONFIG_MAX_HTTP_REQUESTS: '16384',
    });
    await waitFor(`http://127.0.0.1:${jsPort}/sync`);
    const j = await scaleRun({ name: 'js-relay', url: `http://127.0.0.1:${jsPort}/stream?model=${model}` }, jsRelay.pid);
    jsRelay.kill();
    row(
      `4. ${SCALE.streams} concurrent streams, ${SCALE.rate} lines/s for ${scaleSeconds} s`,
      describe(m),
      n ? describe(n) : 'n/a',
      '',
      `Minato: ${m.requests >= SCALE.streams ? 'all' : `${m.requests} of ${SCALE.streams}`} complete; peak RSS ${fmt(m.peak / j.peak, 2)}×, CPU ${fmt(m.cpu / j.cpu, 2)}× the JS-relay floor (4b)`,
      'all complete, 0 errors, peak RSS ≤ 1.15× and CPU ≤ 1.2× the floor',
      m.requests >= SCALE.streams && m.errors === 0 && m.peak <= 1.15 * j.peak && m.cpu <= 1.2 * j.cpu,
    );
    row(
      '4b. the same through a bare Bun proxy that only reads the body in JS',
      describe(j),
      '',
      '',
      `floor for a JS relay: peak RSS ${fmt(j.peak, 0)} MB`,
      'reported',
      undefined,
    );
  }

  // 8. A realistic cadence: many streams at 10 tokens/s; the delay Minato adds between tokens,
  // against nginx in the same run (a separate client process reads every stream chunk by chunk).
  if (wants('cadence') && nginx) {
    const model = 'bench-30x10';
    const cadence = async (url: string, streams: number, body?: string, headers: string[] = []) => {
      const child = Bun.spawn(['bun', 'bench/cadence.ts', url, String(streams), body ?? '', ...headers], {
        cwd: ROOT,
        env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: '16384' },
        stdout: 'pipe',
        stderr: 'inherit',
      });
      const out = await new Response(child.stdout).text();
      await child.exited;
      return JSON.parse(out.trim().split('\n').at(-1)!) as { completed: number; errors: number; p50: number; p99: number };
    };
    for (const streams of CADENCE) {
      const fresh = await startMinato(ollamaPort);
      const viaNginx = await cadence(`${nginx.url}/api/generate`, streams, generate(model));
      const viaMinato = await cadence(`${fresh.url}/stream/${model}?message=hi`, streams, undefined, [
        `Authorization:${AUTH.Authorization}`,
      ]);
      fresh.child.kill();
      const addedP50 = viaMinato.p50 - viaNginx.p50;
      const addedP99 = viaMinato.p99 - viaNginx.p99;
      const complete = viaMinato.completed === streams && viaMinato.errors === 0;
      row(
        `8. ${streams} concurrent streams at 10 tokens/s (gap between tokens, p50 / p99 ms)`,
        `${fmt(viaMinato.p50, 1)} / ${fmt(viaMinato.p99, 1)}; ${viaMinato.completed} done, ${viaMinato.errors} errors`,
        `${fmt(viaNginx.p50, 1)} / ${fmt(viaNginx.p99, 1)}; ${viaNginx.completed} done`,
        '',
        `added p50 ${fmt(addedP50, 1)} ms, p99 ${fmt(addedP99, 1)} ms`,
        streams === 1000 ? 'p99 added ≤ 25 ms' : 'reported',
        streams === 1000 ? complete && addedP99 <= 25 : undefined,
      );
    }
  }

  // 5. Vision: one large image, latency against sending it to Ollama directly, and peak RSS.
  if (wants('vision')) {
    const visionMinato = await startMinato(ollamaPort);
    const image = new Uint8Array(IMAGE_BYTES);
    // A complete PNG header (signature, IHDR with 640×480): Minato checks the header is whole.
    const header = [
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 2, 0x80, 0, 0, 1, 0xe0, 8, 6, 0, 0, 0,
    ];
    image.set(header);
    for (let i = header.length; i < image.length; i++) image[i] = (i * 7919) & 0xff;
    // Warm the vision path up with a small image, so that loading its code is not counted, then
    // reset the kernel's peak-RSS mark (writing 5 to clear_refs) and take the baseline.
    const warm = new FormData();
    warm.append('images', new Blob([image.subarray(0, 1024)]), 'small.png');
    await (await fetch(`${visionMinato.url}/vision/bench-5x0?message=hi`, { method: 'POST', body: warm, headers: AUTH })).text();
    await Bun.sleep(200);
    writeFileSync(`/proc/${visionMinato.pid}/clear_refs`, '5');
    const visionIdle = processStats(visionMinato.pid).rssMb;
    const base64 = Buffer.from(image).toString('base64');
    const visionTimes = { minato: [] as number[], direct: [] as number[] };
    let firstPeak = Number.NaN;
    for (let i = 0; i < (QUICK ? 1 : 3); i++) {
      const form = new FormData();
      form.append('images', new Blob([image]), 'big.png');
      let t = performance.now();
      const answer = await fetch(`${visionMinato.url}/vision/bench-5x0?message=hi`, { method: 'POST', body: form, headers: AUTH });
      if (answer.status !== 200) throw new Error(`vision answered ${answer.status}: ${await answer.text()}`);
      await answer.text();
      visionTimes.minato.push(performance.now() - t);
      if (i === 0) firstPeak = processStats(visionMinato.pid).peakRssMb;
      t = performance.now();
      await (
        await fetch(`${direct}/api/generate`, {
          method: 'POST',
          body: JSON.stringify({ model: 'bench-5x0', prompt: 'hi', images: [base64] }),
        })
      ).text();
      visionTimes.direct.push(performance.now() - t);
    }
    const laterPeak = processStats(visionMinato.pid).peakRssMb;
    const imageMb = IMAGE_BYTES / 1024 / 1024;
    const perImage = (firstPeak - visionIdle) / imageMb;
    row(
      `5. vision, one ${imageMb} MiB image upload (ms)`,
      fmt(median(visionTimes.minato), 1),
      '',
      fmt(median(visionTimes.direct), 1),
      `added ${fmt(median(visionTimes.minato) - median(visionTimes.direct), 1)} ms; peak RSS +${fmt(firstPeak - visionIdle, 1)} MB = ${fmt(perImage, 2)}× the image${QUICK ? '' : ` (+${fmt(laterPeak - visionIdle, 1)} MB after 3 uploads: garbage awaiting collection)`}`,
      'peak RSS ≤ 3× the image',
      perImage <= 3,
    );
  }

  const machine = [
    `- CPU: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores; memory ${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `- ${sh(['uname', '-sr']).out.trim()}; Bun ${Bun.version}; ${sh(['wrk', '-v']).out.split('\n')[0]?.trim()}; ${nginx ? sh(['nginx', '-v']).out.trim() : 'nginx not installed'}`,
    `- Everything on loopback on this one machine: the Ollama stand-in, Minato, nginx (1 worker) and wrk (1 thread).`,
  ].join('\n');
  console.log(`\n${table()}\n`);
  if (!QUICK && !ONLY) {
    writeFileSync(
      `${ROOT}bench/RESULTS.md`,
      `# Benchmark results\n\nWritten by \`bun run bench\` on ${new Date().toISOString()}.\n\n${machine}\n- ${ROUNDS} rounds of ${SECONDS} s per workload and target, alternating; medians.\n\n${table()}\n${causes()}`,
    );
    console.log('wrote bench/RESULTS.md');
  }
  const missed = rows.filter((r) => r.ok === false).length;
  console.log(`bench: ${rows.length} measurements, ${missed} target(s) missed`);
}

try {
  await main();
} finally {
  for (const child of children) {
    const below = descendants(child.pid);
    child.kill('SIGKILL'); // the `bun run` wrapper first, so that it does not report its child's end
    for (const pid of below) {
      try {
        process.kill(pid);
      } catch {
        // already gone
      }
    }
  }
  await Promise.all(children.map((child) => child.exited));
  rmSync(work, { recursive: true, force: true });
}
