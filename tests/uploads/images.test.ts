import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { imageInfo, imagesJsonBody, sniffImage } from '../../src/uploads/images';
import { MultipartError, readMultipart } from '../../src/uploads/multipart';
import { HEADER_BYTES, imageHeader } from '../fixtures/images';
import { TINY_PNG } from '../helpers';

/** A body delivered in chunks of the given size, as a slow or chunked upload would be. */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}

async function encodeForm(fields: [string, Uint8Array | string, string?][]) {
  const form = new FormData();
  for (const [name, value, filename] of fields) {
    if (typeof value === 'string') form.append(name, value);
    else form.append(name, new Blob([value as Uint8Array<ArrayBuffer>]), filename ?? 'file.bin');
  }
  const request = new Request('http://x/', { method: 'POST', body: form });
  const boundary = /boundary=(.+)$/.exec(request.headers.get('content-type')!)![1]!;
  return { boundary, bytes: new Uint8Array(await request.arrayBuffer()) };
}

const joined = (chunks: Uint8Array[]) => Buffer.concat(chunks);

describe('readMultipart', () => {
  test("reads what Bun's FormData wrote, in any chunking: names, filenames, bytes", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.tuple(
            fc.constantFrom('images', 'other', 'ünï'),
            fc.oneof(fc.uint8Array({ maxLength: 3000 }), fc.string({ maxLength: 50 })),
            fc.constantFrom('a.png', 'b c.jpg', 'x'),
          ),
          { minLength: 1, maxLength: 5 },
        ),
        fc.integer({ min: 1, max: 700 }),
        async (fields, chunkSize) => {
          const { boundary, bytes } = await encodeForm(fields);
          const parts = await readMultipart(chunked(bytes, chunkSize), boundary);
          expect(parts.length).toBe(fields.length);
          parts.forEach((part, index) => {
            const [name, value, filename] = fields[index]!;
            expect(part.name).toBe(name);
            if (typeof value === 'string') {
              expect(part.filename).toBeUndefined();
              expect(joined(part.chunks).toString('utf8')).toBe(value);
            } else {
              expect(part.filename).toBe(filename!);
              expect(joined(part.chunks).equals(Buffer.from(value))).toBe(true);
              expect(part.size).toBe(value.length);
            }
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  test('lets a hook stop an oversized part while it is still arriving', async () => {
    const { boundary, bytes } = await encodeForm([
      ['images', new Uint8Array(100)],
      ['images', new Uint8Array(200_000)],
    ]);
    let read = 0;
    const body = chunked(bytes, 1024);
    const counting = body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform: (chunk, controller) => {
          read += chunk.length;
          controller.enqueue(chunk);
        },
      }),
    );
    const error = await readMultipart(counting, boundary, {
      onPartData: (part) => {
        if (part.size > 10_000) throw new Error('too large');
      },
    }).catch((caught) => caught);
    expect(String(error)).toContain('too large');
    expect(read).toBeLessThan(20_000);
  });

  test('refuses a body without its closing boundary, or without any boundary', async () => {
    const { boundary, bytes } = await encodeForm([['images', TINY_PNG]]);
    expect(readMultipart(chunked(bytes.subarray(0, bytes.length - 10), 64), boundary)).rejects.toBeInstanceOf(MultipartError);
    expect(readMultipart(chunked(new Uint8Array(20_000), 64), boundary)).rejects.toBeInstanceOf(MultipartError);
  });
});

describe('imagesJsonBody', () => {
  test('writes standard base64 of chunked bytes, identical to encoding them whole', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 50 }), { maxLength: 8 }), fc.base64String(), async (chunks, base64) => {
        const whole = Buffer.concat(chunks).toString('base64');
        const unpadded = base64.replace(/=+$/, '');
        const pieces = [Buffer.from(unpadded.slice(0, 3)), Buffer.from(unpadded.slice(3))];
        const padding = base64.slice(unpadded.length);
        const text = await new Response(
          imagesJsonBody({ model: 'm', prompt: 'p' }, [
            { chunks: chunks.map((c) => c.slice()), size: 0 },
            { base64: pieces, padding },
          ]),
        ).text();
        expect(JSON.parse(text)).toEqual({ model: 'm', prompt: 'p', images: [whole, base64] });
      }),
      { numRuns: 200 },
    );
  });
});

describe('imageInfo', () => {
  test('knows PNG, JPEG, GIF, WebP and BMP by their bytes, dimensions read from the header', () => {
    expect(imageInfo(TINY_PNG)).toEqual({ kind: 'png', width: 1, height: 1 });
    for (const kind of ['png', 'jpeg', 'gif', 'webp', 'bmp'] as const) {
      expect(imageInfo(imageHeader(kind, 640, 480))).toEqual({ kind, width: 640, height: 480 });
    }
  });
  test('a signature alone, or any header cut short, is refused', () => {
    expect(sniffImage(TINY_PNG.subarray(0, 8))).toBeUndefined();
    for (const kind of ['png', 'jpeg', 'gif', 'webp', 'bmp'] as const) {
      const header = imageHeader(kind);
      for (let length = 0; length < HEADER_BYTES[kind]; length++) {
        expect({ kind, length, info: imageInfo(header.subarray(0, length)) }).toEqual({ kind, length, info: undefined });
      }
    }
  });
  test('zero dimensions are refused', () => {
    for (const kind of ['png', 'gif', 'bmp'] as const) expect(imageInfo(imageHeader(kind, 0, 5))).toBeUndefined();
  });
  test('a JPEG whose frame header lies beyond the bytes looked at is judged on what was seen', () => {
    const app1 = Uint8Array.from([0xff, 0xd8, 0xff, 0xe1, 0xff, 0xff, ...new Array(100).fill(0)]);
    expect(imageInfo(app1, 1_000_000)).toEqual({ kind: 'jpeg' }); // the image goes on: its metadata is large
    expect(imageInfo(app1, app1.length)).toBeUndefined(); // the image ends there: no frame header at all
    expect(imageInfo(Uint8Array.from([0xff, 0xd8, 0xff, 0xda, 0, 2]), 1_000_000)).toBeUndefined(); // scan data before any frame header
  });
  test('refuses everything else', () => {
    for (const bytes of ['<svg xmlns="http://www.w3.org/2000/svg"/>', '%PDF-1.7', `RIFF\0\0\0\0WAVEfmt ${' '.repeat(20)}`, 'BM', '']) {
      expect(sniffImage(new TextEncoder().encode(bytes))).toBeUndefined();
    }
  });
});
