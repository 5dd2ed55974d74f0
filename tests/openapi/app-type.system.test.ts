import { expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// `AppType` is for clients outside this repository (`hc<AppType>(url)`): a project elsewhere that
// imports it must type-check with nothing of ours but the import (the Swagger UI asset imports
// once needed a declaration file that only this repository's tsconfig included).
const ROOT = join(import.meta.dir, '../..');

test('a project outside the repository imports AppType and type-checks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'minato-outside-'));
  try {
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ESNext',
          module: 'ESNext',
          moduleResolution: 'bundler',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          allowImportingTsExtensions: true,
          typeRoots: [join(ROOT, 'node_modules')],
          types: ['bun-types'],
        },
        files: ['client.ts'],
      }),
    );
    writeFileSync(
      join(dir, 'client.ts'),
      `import type { AppType } from ${JSON.stringify(join(ROOT, 'src/app'))};\nexport type Check = AppType;\n`,
    );
    const run = Bun.spawnSync([join(ROOT, 'node_modules/.bin/tsc'), '-p', dir], { stdout: 'pipe', stderr: 'pipe' });
    expect(`${run.stdout.toString()}${run.stderr.toString()}`).toBe('');
    expect(run.exitCode).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
