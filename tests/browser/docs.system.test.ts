import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Browser, Page } from 'playwright-core';
import { type Harness, startHarness } from '../helpers';
import { CHROMIUM, launchChromium } from './chromium';

// /docs as a person uses it: the rendered Swagger UI in Chromium, "Try it out" filled in by hand.
let h: Harness;
let browser: Browser | undefined;
beforeAll(async () => {
  h = startHarness();
  if (CHROMIUM) browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await h.close();
});

/** Opens an operation in /docs, fills in only `values`, executes it, and waits for the answer. */
async function tryItOut(page: Page, tag: string, operationId: string, values: Record<string, string>) {
  await page.goto(`${h.url}/docs`);
  const operation = page.locator(`#operations-${tag}-${operationId}`);
  await operation.locator('.opblock-summary').click();
  const tryOut = operation.locator('.try-out__btn');
  if ((await tryOut.count()) > 0 && ((await tryOut.textContent()) ?? '').includes('Try it out')) await tryOut.click();
  for (const [name, value] of Object.entries(values)) await operation.locator(`tr[data-param-name="${name}"] input`).fill(value);
  await operation.locator('.execute').click();
  await operation.locator('.live-responses-table tbody .response-col_status').first().waitFor({ timeout: 10_000 });
  return operation;
}

describe.skipIf(!CHROMIUM)('/docs "Try it out" in Chromium', () => {
  test('filling in only the required fields sends only those to Ollama', async () => {
    const page = await browser!.newPage();
    try {
      const before = h.ollama.requests.length;
      const operation = await tryItOut(page, 'Generate', 'answerOnQuery', { model_name: 'llama3.2', message: 'Hi there' });
      expect(await operation.locator('.live-responses-table tbody .response-col_status').first().textContent()).toContain('200');
      const sent = h.ollama.requests.slice(before).find((r) => r.path === '/api/generate');
      expect(sent?.body).toEqual({ model: 'llama3.2', prompt: 'Hi there', stream: true });
    } finally {
      await page.close();
    }
  }, 30_000);

  test('a streamed operation shows its answer as text, and says how to watch it stream', async () => {
    const page = await browser!.newPage();
    try {
      const operation = await tryItOut(page, 'Generate', 'streamAnswerOnQuery', { model_name: 'llama3.2', message: 'Hi' });
      const body = await operation.locator('.live-responses-table tbody .response-col_description').first().textContent();
      expect(body).toContain('The sky is blue.');
      expect(body).not.toContain("can't parse JSON");
      expect(await operation.locator('.opblock-description-wrapper').textContent()).toContain('curl -N');
    } finally {
      await page.close();
    }
  }, 30_000);

  test('each error status shows its own example, and /models_list is listed once', async () => {
    const page = await browser!.newPage();
    try {
      await page.goto(`${h.url}/docs`);
      const operation = page.locator('#operations-Generate-answerOnQuery');
      await operation.locator('.opblock-summary').click();
      const example = (code: number) => operation.locator(`.responses-table tr.response[data-code="${code}"]`).textContent();
      expect(await example(404)).toContain('model_not_found');
      expect(await example(503)).toContain('queue_full');
      expect(await example(504)).toContain('upstream_timeout');
      expect(await example(503)).not.toContain('model_not_found');
      const paths = await page.locator('.opblock-summary-path').allTextContents();
      expect(paths.filter((path) => path.replace(/\u200b/g, '').startsWith('/models_list'))).toHaveLength(1);
    } finally {
      await page.close();
    }
  }, 30_000);

  test('the chat operation pre-fills only the required messages, and sends just that', async () => {
    const page = await browser!.newPage();
    try {
      const before = h.ollama.requests.length;
      const operation = await tryItOut(page, 'Chat', 'chat', { model_name: 'llama3.2' });
      expect((await operation.locator('.live-responses-table tbody .response-col_status').first().textContent()) ?? '').toContain('200');
      const sent = h.ollama.requests.slice(before).find((r) => r.path === '/api/chat');
      expect(sent?.body).toEqual({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why is the sky blue?' }], stream: true });
    } finally {
      await page.close();
    }
  }, 30_000);
});
