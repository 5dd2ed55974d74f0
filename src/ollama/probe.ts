import { networkErrorText } from '../http/errors';
import { parseObject } from '../streaming/ndjson';

export type ProbeResult = { level: 'info' | 'warn'; url: string; version?: string; problem?: string };

/**
 * Asks OLLAMA_HOST for `/api/version` once and says what answered: Ollama and its version, or in
 * one line what else (nothing, an error status, an HTML page) and what to check.
 */
export async function probeOllama(baseUrl: string, timeoutMs = 3000): Promise<ProbeResult> {
  const check = 'Check that Ollama is running (`ollama serve`) and that OLLAMA_HOST is its address, e.g. http://127.0.0.1:11434.';
  let response: Response;
  try {
    response = await fetch(`${baseUrl}/api/version`, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const reason = (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : networkErrorText(error);
    return {
      level: 'warn',
      url: baseUrl,
      problem: `Ollama is not reachable at ${baseUrl} (${reason}); requests get 502 until it is. ${check}`,
    };
  }
  const type = response.headers.get('content-type')?.split(';')[0]?.trim() ?? 'no content type';
  const text = await response.text().catch(() => '');
  const version = parseObject(text)?.version;
  if (response.ok && typeof version === 'string') return { level: 'info', url: baseUrl, version };
  return {
    level: 'warn',
    url: baseUrl,
    problem: `Something other than Ollama answered at ${baseUrl}/api/version (HTTP ${response.status}, ${type}, ${text.length} bytes). ${check}`,
  };
}
