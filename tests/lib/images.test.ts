import { describe, expect, test } from 'bun:test';
import { loadConfig } from '../../src/config';
import { ApiError } from '../../src/lib/errors';
import { multipartGuard, sniffImage } from '../../src/lib/images';
import { TINY_PNG } from '../helpers';

const config = loadConfig({ MINATO_MAX_IMAGE_BYTES: '1000', MINATO_MAX_IMAGES: '2' });

async function multipartBody(parts: Uint8Array[]) {
  const form = new FormData();
  for (const part of parts) form.append('images', new Blob([part as Uint8Array<ArrayBuffer>]), 'x.png');
  const request = new Request('http://x/', { method: 'POST', body: form });
  const boundary = /boundary=(.+)$/.exec(request.headers.get('content-type')!)![1]!;
  return { boundary, bytes: new Uint8Array(await request.arrayBuffer()) };
}

function feed(guard: (chunk: Uint8Array) => void, bytes: Uint8Array, chunkSize: number) {
  for (let at = 0; at < bytes.length; at += chunkSize) guard(bytes.subarray(at, at + chunkSize));
}

describe('multipartGuard', () => {
  test('lets a body within the limits through, whatever the chunking (delimiters split across chunks)', async () => {
    const { boundary, bytes } = await multipartBody([new Uint8Array(990), new Uint8Array(1000)]);
    for (const size of [1, 3, 7, 64, 1000, bytes.length]) expect(() => feed(multipartGuard(boundary, config), bytes, size)).not.toThrow();
  });

  test('stops at the first part larger than an image may be', async () => {
    const { boundary, bytes } = await multipartBody([new Uint8Array(100), new Uint8Array(40_000)]);
    let read = 0;
    const guard = multipartGuard(boundary, config);
    const error = (() => {
      try {
        for (let at = 0; at < bytes.length; at += 512) {
          guard(bytes.subarray(at, at + 512));
          read = at + 512;
        }
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).code).toBe('image_too_large');
    expect(read).toBeLessThan(1000 + 16 * 1024 + 2048);
  });

  test('stops when the parts outnumber the images allowed (plus a few other fields)', async () => {
    const { boundary, bytes } = await multipartBody(Array.from({ length: 20 }, () => new Uint8Array(10)));
    expect(() => feed(multipartGuard(boundary, config), bytes, 100)).toThrow(/MINATO_MAX_IMAGES/);
  });
});

describe('sniffImage', () => {
  test('knows PNG, JPEG, GIF, WebP and BMP by their bytes', () => {
    const ascii = (text: string) => new TextEncoder().encode(text);
    expect(sniffImage(TINY_PNG)).toBe('png');
    expect(sniffImage(new Uint8Array([0xff, 0xd8, 0xff, 0xdb]))).toBe('jpeg');
    expect(sniffImage(ascii('GIF87a....'))).toBe('gif');
    expect(sniffImage(ascii('RIFF\0\0\0\0WEBPVP8 '))).toBe('webp');
    expect(sniffImage(ascii(`BM${'\0'.repeat(30)}`))).toBe('bmp');
  });
  test('refuses everything else', () => {
    for (const bytes of ['<svg xmlns="http://www.w3.org/2000/svg"/>', '%PDF-1.7', 'RIFF\0\0\0\0WAVEfmt ', 'BM', '']) {
      expect(sniffImage(new TextEncoder().encode(bytes))).toBeUndefined();
    }
  });
});
