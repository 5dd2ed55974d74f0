import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config';
import { startServer } from '../../src/server';
import { readChunks, sleep } from '../helpers';
import { type OllamaDouble, startOllamaDouble } from '../ollama-double';

/**
 * deploy/nginx.conf and deploy/haproxy.cfg as shipped (only their ports changed), run by Debian's
 * nginx and haproxy (.ci/run installs them) in front of two Minato replicas: streams pass unbuffered,
 * both replicas serve, and a draining replica (SIGTERM: /ready and new requests 503) is left out.
 */
const NGINX = '/usr/sbin/nginx';
const HAPROXY = '/usr/sbin/haproxy';
const KEY = 'balancer-key-0123456789abcdef';
const DEPLOY = join(import.meta.dir, '../../deploy');

type Replica = { port: number; paths: string[]; drain: () => void; close: () => Promise<void> };

function startReplica(ollama: OllamaDouble): Replica {
  const config = loadConfig({ OLLAMA_HOST: ollama.url, MINATO_API_KEYS: KEY, MINATO_RATE_LIMIT: '0', MINATO_SHUTDOWN_GRACE: '30' });
  const paths: string[] = [];
  const { server, lifecycle } = startServer(
    { config, log: (line) => paths.push(JSON.parse(line).path) },
    { port: 0, hostname: '127.0.0.1' },
  );
  return {
    port: server.port as number,
    paths,
    drain: () => lifecycle.startDraining(),
    close: async () => {
      await server.stop(true);
    },
  };
}

const freePort = () => {
  const probe = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() });
  const port = probe.port as number;
  probe.stop(true);
  return port;
};

/** The shipped file with the replicas' and the listener's ports put in. */
function withPorts(file: string, listen: number, replicas: Replica[]) {
  return readFileSync(join(DEPLOY, file), 'utf8')
    .replace('127.0.0.1:8001', `127.0.0.1:${replicas[0]!.port}`)
    .replace('127.0.0.1:8002', `127.0.0.1:${replicas[1]!.port}`)
    .replace(/(listen |bind 127\.0\.0\.1:)8000/, `$1${listen}`);
}

async function waitForPort(port: number) {
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/health`).then(
      () => true,
      () => false,
    );
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${port}`);
}

const get = (port: number, path: string) => fetch(`http://127.0.0.1:${port}${path}`, { headers: { Authorization: `Bearer ${KEY}` } });

type Balancer = { port: number; stop: () => Promise<void> };

function startNginx(replicas: Replica[]): Promise<Balancer> {
  const dir = mkdtempSync(join(tmpdir(), 'minato-nginx-'));
  const port = freePort();
  writeFileSync(join(dir, 'minato.conf'), withPorts('nginx.conf', port, replicas));
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;\n  include ${dir}/minato.conf;\n}\n`,
  );
  const child = Bun.spawn([NGINX, '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
    stdout: 'ignore',
    stderr: 'inherit',
  });
  return running(child, port, dir);
}

/** The balancer once it listens; stopping it also removes its folder. */
async function running(child: ReturnType<typeof Bun.spawn>, port: number, dir: string): Promise<Balancer> {
  await waitForPort(port);
  return {
    port,
    stop: async () => {
      child.kill('SIGTERM');
      await child.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function startHaproxy(replicas: Replica[]): Promise<Balancer> {
  const dir = mkdtempSync(join(tmpdir(), 'minato-haproxy-'));
  const port = freePort();
  writeFileSync(join(dir, 'haproxy.cfg'), withPorts('haproxy.cfg', port, replicas));
  const child = Bun.spawn([HAPROXY, '-db', '-f', join(dir, 'haproxy.cfg')], { stdout: 'ignore', stderr: 'ignore' });
  return running(child, port, dir);
}

const generations = (replica: Replica) => replica.paths.filter((path) => path.startsWith('/llama3.2')).length;

for (const [name, binary, start] of [
  ['nginx (deploy/nginx.conf)', NGINX, startNginx],
  ['HAProxy (deploy/haproxy.cfg)', HAPROXY, startHaproxy],
] as const) {
  describe.skipIf(!existsSync(binary))(`two replicas behind ${name}`, () => {
    let ollama: OllamaDouble;
    let replicas: Replica[];
    let balancer: Balancer;
    beforeAll(async () => {
      ollama = startOllamaDouble([
        { name: 'llama3.2', capabilities: ['completion'], tokens: ['The', ' sky', ' is', ' blue', '.'], tokenDelayMs: 150 },
      ]);
      replicas = [startReplica(ollama), startReplica(ollama)];
      balancer = await start(replicas);
    });
    afterAll(async () => {
      await balancer.stop();
      for (const replica of replicas) await replica.close();
      await ollama.close();
    });

    test('a stream passes token by token, not buffered', async () => {
      const startedAt = Date.now();
      const response = await fetch(`http://127.0.0.1:${balancer.port}/stream/llama3.2?message=hi`, {
        headers: { Authorization: `Bearer ${KEY}`, Accept: 'text/plain' },
      });
      expect(response.status).toBe(200);
      const { chunks, text } = await readChunks(response);
      expect(text).toBe('The sky is blue.');
      // Five tokens 150 ms apart arrive as five pieces, each about when Ollama wrote it (HAProxy
      // without `option http-no-delay` held the first for ~360 ms and merged pairs).
      expect(chunks.map((chunk) => chunk.text)).toEqual(['The', ' sky', ' is', ' blue', '.']);
      expect(chunks[0]!.at - startedAt).toBeLessThan(300);
      for (let i = 1; i < chunks.length; i++) expect(chunks[i]!.at - chunks[i - 1]!.at).toBeGreaterThan(75);
    });

    test('both replicas serve; a draining one is left out and no request fails', async () => {
      ollama.models.get('llama3.2')!.tokenDelayMs = 0;
      const all = await Promise.all(Array.from({ length: 6 }, () => get(balancer.port, '/llama3.2?message=hi')));
      expect(all.map((response) => response.status)).toEqual(Array(6).fill(200));
      expect(generations(replicas[0]!)).toBeGreaterThan(0);
      expect(generations(replicas[1]!)).toBeGreaterThan(0);

      // SIGTERM's drain on the first replica: /ready and new requests answer 503 there.
      replicas[0]!.drain();
      const before = generations(replicas[1]!);
      for (let i = 0; i < 6; i++) expect((await get(balancer.port, '/llama3.2?message=hi')).status).toBe(200);
      expect(generations(replicas[1]!)).toBe(before + 6);
      // A while later the balancer no longer sends it anything but health checks.
      await sleep(1200);
      const seen = replicas[0]!.paths.length;
      for (let i = 0; i < 4; i++) expect((await get(balancer.port, '/llama3.2?message=hi')).status).toBe(200);
      expect(replicas[0]!.paths.slice(seen).filter((path) => path !== '/ready')).toEqual([]);
    });
  });
}
