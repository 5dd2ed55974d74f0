import { existsSync } from 'node:fs';
import type { Browser, LaunchOptions } from 'playwright-core';

/** Debian's Chromium (`apt-get install chromium`; .ci/run installs it), or undefined where there is none. */
export const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((path) => existsSync(path));

/** Headless Chromium driven by playwright-core (root needs --no-sandbox). */
export async function launchChromium(args: string[] = [], options: LaunchOptions = {}): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', ...args], ...options });
}
