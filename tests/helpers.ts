import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { type Config, loadConfig } from '../src/config';
import type { RequestLog } from '../src/middleware/request-context';
import { startServer } from '../src/server';
import { type DoubleModel, type OllamaDouble, startOllamaDouble } from './ollama-double';

export const TINY_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

export const DEFAULT_MODELS: DoubleModel[] = [
  {
    name: 'llama3.2',
    capabilities: ['completion', 'tools'],
    tokens: ['The', ' sky', ' is', ' blue', '.'],
    toolCalls: [{ name: 'get_weather', arguments: { city: 'Tokyo' } }],
  },
  { name: 'llava', capabilities: ['completion', 'vision'], tokens: ['A', ' cat', '.'] },
  { name: 'hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M', tokens: ['Hi', '!'] },
  { name: 'nomic-embed-text', capabilities: ['embedding'] },
];

export type Harness = {
  ollama: OllamaDouble;
  url: string;
  config: Config;
  close: () => Promise<void>;
};

/** The Ollama double and the sidecar, each on a real socket on port 0. */
export function startHarness(
  env: Record<string, string> = {},
  models: DoubleModel[] = DEFAULT_MODELS,
  { log }: { log?: RequestLog } = {},
): Harness {
  const config = loadConfig({ OLLAMA_HOST: 'http://127.0.0.1:1', ...env });
  const ollama = startOllamaDouble(models.map((model) => ({ ...model })));
  if (env.OLLAMA_HOST === undefined) config.ollamaHost = ollama.url;
  // The request log goes to `log` when a test reads it, and nowhere otherwise (not the test output).
  const { server } = startServer({ config, log: log ?? (() => {}) }, { port: 0, hostname: '127.0.0.1' });
  return {
    ollama,
    url: `http://127.0.0.1:${server.port}`,
    config,
    close: async () => {
      await server.stop(true);
      await ollama.close();
    },
  };
}

/** Reads a streamed body chunk by chunk, noting when each chunk arrived. */
export async function readChunks(response: Response, until?: (text: string) => boolean) {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const chunks: { text: string; at: number }[] = [];
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const piece = decoder.decode(value, { stream: true });
    chunks.push({ text: piece, at: Date.now() });
    text += piece;
    if (until?.(text)) {
      await reader.cancel();
      break;
    }
  }
  return { chunks, text };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A response's JSON body, typed loosely for assertions. */
// biome-ignore lint/suspicious/noExplicitAny: test assertions inspect arbitrary JSON
export const json = (response: Response): Promise<any> => response.json() as Promise<any>;

/**
 * Writes a request byte for byte on a raw socket and reads the answer until the server closes
 * (send `Connection: close`): fetch would normalise or refuse what these tests need to send.
 */
export function rawHttp(url: string, head: string, timeoutMs = 5000): Promise<{ status: number; headers: string; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to ${JSON.stringify(head.slice(0, 80))}`));
    }, timeoutMs);
    socket.on('data', (data) => {
      received += data.toString('latin1');
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const split = received.indexOf('\r\n\r\n');
      resolve({ status: Number(received.slice(9, 12)), headers: received.slice(0, split), body: received.slice(split + 4) });
    });
    socket.on('error', () => {});
    socket.write(head);
  });
}

export type MinatoProcess = {
  url: string;
  pid: number;
  /** Every stdout line so far (the request log and lifecycle lines). */
  lines: string[];
  /** The process's memory from /proc: current and peak resident set, in bytes. */
  memory: () => { rss: number; peak: number };
  /** Resets the kernel's peak-RSS mark to the current RSS. */
  resetPeak: () => void;
  stop: (signal?: NodeJS.Signals) => Promise<number>;
};

/**
 * Minato as `bun run start` runs it (same flags and environment), in its own process on a free
 * port, started directly rather than through the script's shell so that `pid` is the server's.
 */
export async function spawnMinato(env: Record<string, string>): Promise<MinatoProcess> {
  const child = Bun.spawn(['bun', '--max-http-header-size=131072', 'run', 'src/index.ts'], {
    cwd: `${import.meta.dir}/..`,
    env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: '16384', PORT: '0', ...env },
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const lines: string[] = [];
  let url: string | undefined;
  (async () => {
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of child.stdout) {
      buffered += decoder.decode(chunk, { stream: true });
      let newline = buffered.indexOf('\n');
      while (newline !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        lines.push(line);
        if (url === undefined && line.includes('"msg":"listening"')) url = JSON.parse(line).url;
        newline = buffered.indexOf('\n');
      }
    }
  })();
  for (let waited = 0; url === undefined; waited += 20) {
    if (waited > 10_000 || child.exitCode !== null) throw new Error(`Minato did not start (exit code ${child.exitCode})`);
    await sleep(20);
  }
  const pid = child.pid;
  const status = (field: string) => {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? Number.NaN) * 1024;
  };
  return {
    url: url as string,
    pid,
    lines,
    memory: () => ({ rss: status('VmRSS'), peak: status('VmHWM') }),
    resetPeak: () => writeFileSync(`/proc/${pid}/clear_refs`, '5'),
    stop: async (signal = 'SIGTERM') => {
      child.kill(signal);
      return await child.exited;
    },
  };
}

/** Tokens /metrics has counted for `model` (as Ollama resolves it: `llama3.2` is `llama3.2:latest`), read with `key`. */
export async function generatedTokens(url: string, key: string, model: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers: { Authorization: `Bearer ${key}` } })).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`minato_generated_tokens_total{model="${model}:latest"} `));
  return Number(line?.split(' ')[1] ?? 0);
}
