import { describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// deploy/minato.service as shipped, rated by systemd's own analysis (Debian's systemd package).
// It cannot be started here (no systemd as PID 1): what the sandbox allows is argued in the file.
const ANALYZE = '/usr/bin/systemd-analyze';
const UNIT = join(import.meta.dir, '../../deploy/minato.service');

describe.skipIf(!existsSync(ANALYZE))('deploy/minato.service', () => {
  test('systemd-analyze security rates it below 4 (it was 8.3 EXPOSED)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'minato-unit-'));
    try {
      copyFileSync(UNIT, join(dir, 'minato.service'));
      const run = Bun.spawnSync([ANALYZE, 'security', '--offline=yes', '--no-pager', join(dir, 'minato.service')], {
        stdout: 'pipe',
        stderr: 'pipe',
      });
      const output = `${run.stdout.toString()}${run.stderr.toString()}`;
      const score = Number(/Overall exposure level for minato\.service: ([\d.]+)/.exec(output)?.[1]);
      expect(score).toBeLessThan(4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('what Minato needs stays allowed: the network, JIT memory, its credential', async () => {
    const unit = await Bun.file(UNIT).text();
    const setting = (name: string) =>
      unit
        .split('\n')
        .filter((line) => line.startsWith(`${name}=`))
        .map((line) => line.slice(name.length + 1));
    expect(setting('RestrictAddressFamilies')).toEqual(['AF_INET AF_INET6 AF_UNIX']);
    expect(setting('PrivateNetwork')).toEqual([]);
    // Bun's engine compiles JavaScript to machine code at run time: W^X memory would stop it.
    expect(setting('MemoryDenyWriteExecute')).toEqual([]);
    expect(setting('LoadCredential')).toEqual(['keys:/etc/minato/keys']);
    // A filtered system call fails with EPERM rather than killing the process.
    expect(setting('SystemCallErrorNumber')).toEqual(['EPERM']);
  });
});
