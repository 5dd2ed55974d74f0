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
  { name: 'llama3.2', tokens: ['The', ' sky', ' is', ' blue', '.'] },
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
