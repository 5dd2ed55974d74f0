import { describe, expect, test } from 'bun:test';
import { ConfigError, loadConfig, normalizeOllamaHost } from '../src/config';
import { startOllamaDouble } from './ollama-double';

describe('OLLAMA_HOST accepts the forms Ollama accepts', () => {
  const cases: [string, string][] = [
    ['127.0.0.1', 'http://127.0.0.1:11434'],
    ['gpu-box', 'http://gpu-box:11434'],
    ['gpu-box:9999', 'http://gpu-box:9999'],
    [':9999', 'http://127.0.0.1:9999'],
    ['0.0.0.0:11434', 'http://127.0.0.1:11434'],
    ['http://gpu-box:11434', 'http://gpu-box:11434'],
    ['http://gpu-box', 'http://gpu-box:80'],
    ['https://ollama.internal', 'https://ollama.internal:443'],
    ['https://ollama.internal:8443/prefix/', 'https://ollama.internal:8443/prefix'],
    ['[::1]:11434', 'http://[::1]:11434'],
    ['  localhost  ', 'http://localhost:11434'],
  ];
  for (const [input, expected] of cases) {
    test(`${JSON.stringify(input)} → ${expected}`, () => expect(normalizeOllamaHost(input)).toBe(expected));
  }
  test('rejects other schemes and bad ports', () => {
    expect(() => normalizeOllamaHost('ftp://host')).toThrow('scheme');
    expect(() => normalizeOllamaHost('host:99999')).toThrow('port');
    expect(() => normalizeOllamaHost('host:abc')).toThrow('port');
  });
});

describe('loadConfig', () => {
  test('defaults: Ollama on loopback, port 8000, loopback bind, 5-minute first-byte deadline', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      ollamaHost: 'http://127.0.0.1:11434',
      port: 8000,
      host: '127.0.0.1',
      firstByte: { ms: 300_000, setting: 'MINATO_FIRST_BYTE_TIMEOUT' },
    });
  });
  test('says where the Ollama addresses came from: OLLAMA_HOSTS replaces OLLAMA_HOST, which is then ignored', () => {
    expect(loadConfig({}).ollamaHostsFrom).toEqual({ variable: 'OLLAMA_HOST', ignoredOllamaHost: false });
    const both = loadConfig({ OLLAMA_HOSTS: 'gpu1:11434,gpu2:11434', OLLAMA_HOST: 'gpu0' });
    expect(both.ollamaHostsFrom).toEqual({ variable: 'OLLAMA_HOSTS', ignoredOllamaHost: true });
    expect(both.ollamaHosts).toEqual(['http://gpu1:11434', 'http://gpu2:11434']);
    expect(loadConfig({ OLLAMA_HOSTS: 'gpu1:11434,gpu2:11434' }).ollamaHostsFrom.ignoredOllamaHost).toBe(false);
  });

  test('empty values count as unset', () => {
    expect(loadConfig({ PORT: '', OLLAMA_HOST: '' }).port).toBe(8000);
  });
  test('every invalid value is reported, each on its own line', () => {
    try {
      loadConfig({ PORT: 'eighty', MINATO_MAX_IMAGES: '0', OLLAMA_HOST: 'ftp://x' });
      throw new Error('expected a ConfigError');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems;
      expect(problems.length).toBe(3);
      expect(problems.some((problem) => problem.startsWith('PORT="eighty"'))).toBe(true);
      expect(problems.some((problem) => problem.startsWith('MINATO_MAX_IMAGES="0"'))).toBe(true);
      expect(problems.some((problem) => problem.startsWith('OLLAMA_HOST="ftp://x"'))).toBe(true);
    }
  });
});

describe('the start command (bun run start)', () => {
  const root = `${import.meta.dir}/..`;

  test('an invalid environment stops the process with readable lines and a non-zero exit', () => {
    const result = Bun.spawnSync(['bun', 'run', 'src/index.ts'], {
      cwd: root,
      env: { ...process.env, PORT: 'eighty', MINATO_FIRST_BYTE_TIMEOUT: '-5' },
    });
    expect(result.exitCode).not.toBe(0);
    const stderr = result.stderr.toString();
    expect(stderr).toContain('minato: invalid configuration: PORT="eighty"');
    expect(stderr).toContain('MINATO_FIRST_BYTE_TIMEOUT="-5"');
    expect(stderr).not.toContain('    at ');
  });

  test('starts, serves, and reaches Ollama at OLLAMA_HOST', async () => {
    const ollama = startOllamaDouble([{ name: 'llama3.2' }]);
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const child = Bun.spawn(['bun', 'run', 'start'], {
      cwd: root,
      env: { ...process.env, PORT: String(port), OLLAMA_HOST: ollama.url.replace('http://', '') },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    try {
      let ready: Response | undefined;
      // Up to 15 s: the machine may be busy with other test processes.
      for (let attempt = 0; attempt < 150 && !ready; attempt++) {
        ready = await fetch(`http://127.0.0.1:${port}/ready`).catch(() => undefined);
        if (!ready) await Bun.sleep(100);
      }
      expect(ready?.status).toBe(200);
      const answer = await fetch(`http://127.0.0.1:${port}/llama3.2?message=hi`);
      expect(((await answer.json()) as { response: string }).response).toBe('The sky is blue.');
    } finally {
      child.kill();
      await child.exited;
      await ollama.close();
    }
  });
});

describe('secure by default', () => {
  test('listening beyond loopback without keys is refused, with the reason and the way out', () => {
    let problems: string[] = [];
    try {
      loadConfig({ HOST: '0.0.0.0' });
    } catch (error) {
      problems = (error as ConfigError).problems;
    }
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('HOST=0.0.0.0');
    expect(problems[0]).toContain('MINATO_API_KEYS');
    expect(problems[0]).toContain('MINATO_ALLOW_UNAUTHENTICATED=true');
  });

  test('keys, or the explicit opt-out, allow it; loopback needs neither', () => {
    expect(loadConfig({ HOST: '0.0.0.0', MINATO_API_KEYS: 'a-long-enough-key-0123' }).apiKeys).toHaveLength(1);
    expect(loadConfig({ HOST: '0.0.0.0', MINATO_ALLOW_UNAUTHENTICATED: 'true' }).allowUnauthenticated).toBe(true);
    for (const host of ['127.0.0.1', '127.8.9.10', '::1', 'localhost']) expect(loadConfig({ HOST: host }).apiKeys).toEqual([]);
  });

  test('keys from MINATO_API_KEYS_FILE; an unreadable file is a clear error', async () => {
    const path = `/tmp/minato-keys-${process.pid}.txt`;
    await Bun.write(path, '# keys\nfile-key-0123456789 admin id=ops\n');
    expect(loadConfig({ MINATO_API_KEYS_FILE: path }).apiKeys.map((key) => key.id)).toEqual(['ops']);
    expect(() => loadConfig({ MINATO_API_KEYS_FILE: '/nonexistent/keys' })).toThrow(/cannot read \/nonexistent\/keys \(ENOENT\)/);
  });

  test('MINATO_PUBLIC_PATHS may not open a generation route; CORS_ORIGINS must be origins', () => {
    expect(() => loadConfig({ MINATO_PUBLIC_PATHS: '/health,/install' })).toThrow(/"\/install" cannot be public/);
    expect(loadConfig({ MINATO_PUBLIC_PATHS: 'none' }).publicPaths).toEqual([]);
    expect(() => loadConfig({ CORS_ORIGINS: 'https://ok.example, https://bad.example/path' })).toThrow(
      /"https:\/\/bad.example\/path" is not an origin/,
    );
    expect(loadConfig({ CORS_ORIGINS: '*' }).corsOrigins).toEqual(['*']);
  });
});
