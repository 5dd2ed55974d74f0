import { ConfigError, isLoopback, loadConfig } from './config';
import { probeOllama } from './ollama/probe';
import { startServer } from './server';
import { logWritten, writeLine } from './observability/log-writer';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  for (const problem of error.problems) console.error(`minato: invalid configuration: ${problem}`);
  process.exit(1);
}

// Through the same batched writer as the request log, so that lines keep their order.
const log = (msg: string, fields: Record<string, unknown> = {}, level = 'info') =>
  writeLine(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }));

// Bun's fetch runs at most 256 requests at once (BUN_CONFIG_MAX_HTTP_REQUESTS, Bun's own variable
// rather than Minato's configuration, read only when
// the process starts); more concurrent generations would wait inside Bun, invisibly. The start
// script raises it; say so when Minato was started some other way.
// The single executable (`bun run build`) runs from Bun's embedded file system: there is no
// `bun run start` to point its operator at, and its header limit is built in.
const compiled = Bun.main.startsWith('/$bunfs/') || Bun.main.startsWith('B:/~BUN/');
if (!process.env.BUN_CONFIG_MAX_HTTP_REQUESTS) {
  console.warn(
    compiled
      ? 'minato: BUN_CONFIG_MAX_HTTP_REQUESTS is not set, so at most 256 requests to Ollama run at once; set BUN_CONFIG_MAX_HTTP_REQUESTS=16384 in its environment (deploy/minato.service does).'
      : 'minato: BUN_CONFIG_MAX_HTTP_REQUESTS is not set, so at most 256 requests to Ollama run at once; start with `bun run start`, which sets it (or set BUN_CONFIG_MAX_HTTP_REQUESTS=16384).',
  );
}
// Bun refuses a request line plus headers over 16 KiB with an empty 431 before Minato sees it;
// prompts travel in the query string, so the start script raises that to fit MINATO_MAX_URL_BYTES.
if (!compiled && !process.execArgv.some((arg) => arg.startsWith('--max-http-header-size'))) {
  console.warn(
    'minato: started without --max-http-header-size, so Bun cuts URLs and headers over 16 KiB with an empty 431; start with `bun run start` (or pass --max-http-header-size=131072 to bun).',
  );
}

// Exposed without keys (MINATO_ALLOW_UNAUTHENTICATED): the keyless Host guard still answers only
// requests addressed to loopback names, HOST and MINATO_ALLOWED_HOSTS.
if (config.apiKeys.length === 0 && !isLoopback(config.host) && !config.allowedHosts.includes('*')) {
  console.warn(
    `minato: no API keys, so requests must be addressed to a loopback name${config.allowedHosts.length > 0 ? `, ${config.allowedHosts.join(', ')}` : ''} (DNS-rebinding guard); list the names clients use in MINATO_ALLOWED_HOSTS.`,
  );
}

let started: ReturnType<typeof startServer>;
try {
  started = startServer({ config });
} catch (error) {
  const code = (error as { code?: string }).code;
  if (code === 'EADDRINUSE') {
    console.error(
      `minato: PORT=${config.port} on HOST=${config.host} is already in use (another Minato?). Stop it, or choose another PORT.`,
    );
  } else if (code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    console.error(
      `minato: cannot listen on HOST=${config.host} PORT=${config.port} (${code}): check HOST is an address of this machine and PORT is allowed.`,
    );
  } else throw error;
  process.exit(1);
}
const { server, shutdown } = started;
log('listening', {
  url: `http://${server.hostname}:${server.port}`,
  // OLLAMA_HOSTS, when set, replaces OLLAMA_HOST: say which one is in force.
  ...(config.ollamaHostsFrom.variable === 'OLLAMA_HOSTS'
    ? {
        ollama: config.ollamaHosts,
        ollama_from: `OLLAMA_HOSTS (${config.ollamaHosts.length} instances${config.ollamaHostsFrom.ignoredOllamaHost ? '; OLLAMA_HOST is ignored' : ''})`,
      }
    : { ollama: config.ollamaHost }),
  docs: '/docs',
  auth: config.apiKeys.length > 0 ? `${config.apiKeys.length} API keys` : 'off (no MINATO_API_KEYS)',
});

// Tell the truth about Ollama once, at start: what answered at OLLAMA_HOST. Never fatal: Ollama
// may come up after Minato, and every request checks again.
for (const host of config.ollamaHosts) {
  probeOllama(host).then(({ level, ...fields }) => log(level === 'info' ? 'ollama' : 'ollama not ready', fields, level));
}

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    log('draining', { signal, grace_s: config.shutdownGrace.ms / 1000 });
    const { drained, cutOff } = await shutdown();
    log('stopped', { drained, cut_off: cutOff });
    await logWritten();
    process.exit(0);
  });
}
