import { describe, expect, test } from 'bun:test';
import { json, startHarness } from '../../helpers';

describe('GET /health and GET /ready', () => {
  test('/health answers without calling Ollama, /ready reports its version', async () => {
    const h = startHarness();
    try {
      const health = await fetch(`${h.url}/health`);
      expect(health.status).toBe(200);
      expect(await json(health)).toEqual({ status: 'ok' });
      expect(h.ollama.requests.length).toBe(0);
      const ready = await fetch(`${h.url}/ready`);
      expect(ready.status).toBe(200);
      expect(await json(ready)).toEqual({ status: 'ready', ollama: { url: h.ollama.url, version: '0.33.0-rc2' } });
    } finally {
      await h.close();
    }
  });

  test('/ready is a 503 naming OLLAMA_HOST when Ollama is down; /health stays 200', async () => {
    const h = startHarness({ OLLAMA_HOST: '127.0.0.1:9' });
    try {
      const ready = await fetch(`${h.url}/ready`);
      expect(ready.status).toBe(503);
      expect((await json(ready)).detail).toContain('OLLAMA_HOST');
      expect((await fetch(`${h.url}/health`)).status).toBe(200);
    } finally {
      await h.close();
    }
  });
});
