import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config';
import { startServer } from '../../src/server';
import { readChunks, sleep } from '../helpers';
import { type OllamaDouble, startOllamaDouble } from '../ollama-double';

/**
 * deploy/nginx.conf and deploy/haproxy.cfg as shipped (only their ports and certificate paths
 * changed), run by Debian's nginx and haproxy (.ci/run installs them) in front of two Minato
 * replicas, with TLS from a self-signed certificate made here: streams pass unbuffered, both
 * replicas serve, a draining replica (SIGTERM: /ready and new requests 503) is left out, and each
 * client is known by its own address (X-Forwarded-For from the trusted balancer).
 */
const NGINX = '/usr/sbin/nginx';
const HAPROXY = '/usr/sbin/haproxy';
const KEY = 'balancer-key-0123456789abcdef';
const DEPLOY = join(import.meta.dir, '../../deploy');

type Replica = { port: number; paths: string[]; lines: Record<string, unknown>[]; drain: () => void; close: () => Promise<void> };

function startReplica(ollama: OllamaDouble): Replica {
  const config = loadConfig({
    OLLAMA_HOST: ollama.url,
    MINATO_API_KEYS: KEY,
    MINATO_RATE_LIMIT: '0',
    MINATO_SHUTDOWN_GRACE: '30',
    // The balancers connect from 127.0.0.1; the test's clients come from other loopback addresses.
    MINATO_TRUSTED_PROXIES: '127.0.0.1',
  });
  const paths: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const { server, lifecycle } = startServer(
    {
      config,
      log: (line) => {
        const parsed = JSON.parse(line);
        if (parsed.msg !== 'request') return;
        paths.push(parsed.path);
        lines.push(parsed);
      },
    },
    { port: 0, hostname: '127.0.0.1' },
  );
  return {
    port: server.port as number,
    paths,
    lines,
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

/** A self-signed certificate for 127.0.0.1, made with openssl: the paths the shipped files name, in `dir`. */
const tls = (() => {
  const dir = mkdtempSync(join(tmpdir(), 'minato-tls-'));
  const made = Bun.spawnSync(
    [
      'openssl',
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=minato-test',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ].concat(['-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]),
    { stdout: 'ignore', stderr: 'ignore' },
  );
  if (!made.success) return undefined;
  const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  writeFileSync(join(dir, 'minato.pem'), cert + readFileSync(join(dir, 'key.pem'), 'utf8'));
  return { dir, cert };
})();

/** The shipped file with the replicas' and the listener's ports, and the test certificate, put in. */
function withPorts(file: string, listen: number, replicas: Replica[]) {
  return readFileSync(join(DEPLOY, file), 'utf8')
    .replace('127.0.0.1:8001', `127.0.0.1:${replicas[0]!.port}`)
    .replace('127.0.0.1:8002', `127.0.0.1:${replicas[1]!.port}`)
    .replace(/(listen |bind 127\.0\.0\.1:)8443/, `$1${listen}`)
    .replaceAll('/etc/minato/tls', tls!.dir);
}

/** fetch over the balancer's TLS, trusting the test certificate only. */
const secure = (port: number, path: string, init: RequestInit = {}) =>
  fetch(`https://127.0.0.1:${port}${path}`, { ...init, tls: { ca: tls!.cert } } as RequestInit);

/** A request from another loopback address (another client, as the balancer sees it), over TLS. */
function from(address: string, port: number, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      { host: '127.0.0.1', port, path, localAddress: address, ca: tls!.cert, headers, agent: false },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      },
    );
    request.on('error', reject);
    request.end();
  });
}

async function waitForPort(port: number) {
  for (let i = 0; i < 100; i++) {
    const ok = await secure(port, '/health').then(
      () => true,
      () => false,
    );
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${port}`);
}

const get = (port: number, path: string) => secure(port, path, { headers: { Authorization: `Bearer ${KEY}` } });

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

afterAll(() => {
  if (tls) rmSync(tls.dir, { recursive: true, force: true });
});

const generations = (replica: Replica) => replica.paths.filter((path) => path.startsWith('/llama3.2')).length;

for (const [name, binary, start] of [
  ['nginx (deploy/nginx.conf)', NGINX, startNginx],
  ['HAProxy (deploy/haproxy.cfg)', HAPROXY, startHaproxy],
] as const) {
  describe.skipIf(!existsSync(binary) || !tls)(`two replicas behind ${name}`, () => {
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
      const response = await secure(balancer.port, '/stream/llama3.2?message=hi', {
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

    test('TLS only: the key never crosses in clear, and an untrusted certificate is refused by the client', async () => {
      const plain = await fetch(`http://127.0.0.1:${balancer.port}/health`).then(
        (response) => response.status,
        () => 0,
      );
      // nginx answers plain HTTP on a TLS port with a 400 page; HAProxy drops it: neither reaches Minato.
      expect([0, 400]).toContain(plain);
      await expect(fetch(`https://127.0.0.1:${balancer.port}/health`)).rejects.toThrow();
    });

    test('each client is known by its own address: wrong keys from one do not lock out another, and a forged X-Forwarded-For changes nothing', async () => {
      const auth = (key: string) => ({ Authorization: `Bearer ${key}` });
      const statuses: number[] = [];
      // The guesser forges X-Forwarded-For to look like someone else each time.
      for (let i = 0; i < 32; i++) {
        statuses.push(
          await from('127.0.0.5', balancer.port, '/llama3.2?message=hi', {
            ...auth(`guess-${i}-0123456789abcdef`),
            'X-Forwarded-For': `203.0.113.${i}`,
          }),
        );
      }
      // Two replicas count on their own (per process), each locks the guesser out past 30 of its guesses.
      expect(statuses.filter((status) => status === 401).length).toBeGreaterThanOrEqual(30);
      expect(statuses.every((status) => status === 401 || status === 429)).toBe(true);
      for (let i = 0; i < 40; i++)
        statuses.push(await from('127.0.0.5', balancer.port, '/llama3.2?message=hi', auth(`more-${i}-0123456789abcdef`)));
      expect(statuses.slice(-4)).toEqual([429, 429, 429, 429]);
      // Another client behind the same balancer: its wrong key is a plain 401, its valid key is served.
      expect(await from('127.0.0.6', balancer.port, '/llama3.2?message=hi', auth('typo-0123456789abcdef'))).toBe(401);
      expect(await from('127.0.0.6', balancer.port, '/llama3.2?message=hi', auth(KEY))).toBe(200);
      // And the guesser's own valid key still works (a valid key is never refused for wrong ones).
      expect(await from('127.0.0.5', balancer.port, '/llama3.2?message=hi', auth(KEY))).toBe(200);
      // The request log names each client by the address the balancer saw, never the forged one.
      const clients = new Set(replicas.flatMap((replica) => replica.lines.map((line) => line.client)));
      expect(clients.has('127.0.0.5')).toBe(true);
      expect(clients.has('127.0.0.6')).toBe(true);
      expect([...clients].some((client) => String(client).startsWith('203.0.113.'))).toBe(false);
    }, 30_000);

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
