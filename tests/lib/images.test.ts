import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { imagesJsonBody, sniffImage } from '../../src/lib/images';
import { MultipartError, readMultipart } from '../../src/lib/multipart';
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
        const text = await new Response(
          imagesJsonBody({ model: 'm', prompt: 'p' }, [{ chunks: chunks.map((c) => c.slice()), size: 0 }, { base64 }]),
        ).text();
        expect(JSON.parse(text)).toEqual({ model: 'm', prompt: 'p', images: [whole, base64] });
      }),
      { numRuns: 200 },
    );
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
