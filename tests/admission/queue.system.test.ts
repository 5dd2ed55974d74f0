import { describe, expect, test } from 'bun:test';
import { createAdmission, isTicket, type Slot, type Ticket } from '../../src/admission/queue';
import { ApiError, ClientGoneError } from '../../src/http/errors';

const limits = { perModel: 2, total: 3, queuePerModel: 2, queueTotal: 3, timeoutMs: 60_000 };
const signal = () => new AbortController().signal;
/** A waiter whose slot the test never takes: its timeout, a minute later, must not surface as an unhandled rejection in another test. */
const leftWaiting = (entry: Slot | Ticket) => {
  if (isTicket(entry)) entry.slot.catch(() => {});
  return entry;
};

describe('admission control', () => {
  test('per-model and total limits; the queue is first come, first served', async () => {
    const admission = createAdmission(limits);
    const a1 = admission.enter('a', signal()) as Slot;
    const a2 = admission.enter('a', signal()) as Slot;
    expect(isTicket(a1) || isTicket(a2)).toBe(false);
    const a3 = admission.enter('a', signal()) as Ticket; // model a is full
    expect(a3.position).toBe(1);
    const b1 = admission.enter('b', signal()) as Slot; // b has room, and so has the total
    expect(isTicket(b1)).toBe(false);
    const b2 = admission.enter('b', signal()) as Ticket; // total is full
    expect(b2.position).toBe(2);
    expect(admission.running).toBe(3);
    expect(admission.queued).toBe(2);

    const order: string[] = [];
    a3.slot.then(() => order.push('a3'));
    b2.slot.then(() => order.push('b2'));
    b1.release(); // frees the total: a3 is first in line but a is full, so b2 gets it
    await Bun.sleep(0);
    expect(order).toEqual(['b2']);
    a1.release();
    await Bun.sleep(0);
    expect(order).toEqual(['b2', 'a3']);
    expect((await a3.slot).queuedAt).toBe(1);
    a1.release(); // releasing twice gives back one slot only
    expect(admission.running).toBe(3);
  });

  test('a full queue is a 503 with Retry-After, per model and overall', () => {
    const admission = createAdmission({ ...limits, total: 1, perModel: 1, queuePerModel: 1, queueTotal: 2 });
    leftWaiting(admission.enter('a', signal()));
    leftWaiting(admission.enter('a', signal()));
    const perModel = (() => {
      try {
        admission.enter('a', signal());
      } catch (error) {
        return error as ApiError;
      }
    })();
    expect(perModel?.statusCode).toBe(503);
    expect(perModel?.detail).toContain('MINATO_MAX_QUEUE_PER_MODEL');
    expect(Number(perModel?.headers['Retry-After'])).toBeGreaterThan(0);
    leftWaiting(admission.enter('b', signal()));
    expect(() => admission.enter('c', signal())).toThrow(/MINATO_MAX_QUEUE=2/);
  });

  test('before a body names its model: refused only when no model could start or wait (full queue, and the owner or every slot busy)', () => {
    const admission = createAdmission({ ...limits, total: 1, perModel: 1, queuePerModel: 1, queueTotal: 1, perOwner: 1 });
    admission.checkAnyModel('key:a'); // room everywhere
    const running = admission.enter('a', signal(), 'key:a') as Slot;
    admission.checkAnyModel('key:b'); // the queue still has room
    leftWaiting(admission.enter('b', signal(), 'key:b'));
    // Queue full and the one slot busy: whatever the model, nothing could start or wait.
    expect(() => admission.checkAnyModel('key:c')).toThrow(/MINATO_MAX_QUEUE=1/);
    running.release();
    // The waiter took the slot; the queue has room again.
    admission.checkAnyModel('key:c');
  });

  test('a waiter that times out or whose client leaves gives up its place, and those behind move up', async () => {
    const admission = createAdmission({ ...limits, total: 1, timeoutMs: 50 });
    admission.enter('a', signal());
    const leaving = new AbortController();
    const first = admission.enter('a', leaving.signal) as Ticket;
    const second = admission.enter('b', signal()) as Ticket;
    const positions: number[] = [];
    second.onPosition((position) => positions.push(position));
    leaving.abort();
    expect(first.slot).rejects.toBeInstanceOf(ClientGoneError);
    await Bun.sleep(0);
    expect(positions).toEqual([1]);
    const timedOut = await second.slot.catch((error) => error);
    expect(timedOut).toBeInstanceOf(ApiError);
    expect(timedOut.code).toBe('queue_timeout');
    expect(admission.queued).toBe(0);
  });

  test('one owner (a key) may hold at most perOwner slots; its next waits while others go ahead', async () => {
    const admission = createAdmission({ ...limits, perModel: 10, total: 4, perOwner: 2 });
    const mine = [admission.enter('a', signal(), 'key:greedy'), admission.enter('b', signal(), 'key:greedy')] as Slot[];
    expect(mine.some(isTicket)).toBe(false);
    const third = admission.enter('c', signal(), 'key:greedy') as Ticket; // at its cap, though slots are free
    expect(isTicket(third)).toBe(true);
    const other = admission.enter('c', signal(), 'key:other');
    expect(isTicket(other)).toBe(false); // the waiter ahead cannot use the slot: the other key takes it
    mine[0]!.release();
    const granted = await third.slot;
    expect(granted.queuedAt).toBe(1);
    expect(admission.running).toBe(3);
  });

  test('Retry-After follows how long generations take lately', async () => {
    const admission = createAdmission({ ...limits, total: 1, perModel: 1, queuePerModel: 0, queueTotal: 0 });
    const retryAfter = () => {
      try {
        admission.enter('a', signal());
      } catch (error) {
        return Number((error as ApiError).headers['Retry-After']);
      }
      throw new Error('not refused');
    };
    const slot = admission.enter('a', signal()) as Slot;
    expect(retryAfter()).toBe(1); // nothing measured yet
    await Bun.sleep(2100);
    slot.release();
    admission.enter('a', signal());
    expect(retryAfter()).toBe(3); // one generation ahead, ~2.1 s each
  });
});

describe('admission across several instances (places)', () => {
  test('limits apply per instance; a waiter takes the first slot that frees on any of its instances', async () => {
    const admission = createAdmission({ ...limits, perModel: 1, total: 2 });
    const onA = admission.enter('m', signal(), undefined, ['A', 'B']) as Slot;
    const onB = admission.enter('m', signal(), undefined, ['A', 'B']) as Slot;
    expect([onA.place, onB.place]).toEqual(['A', 'B']);
    expect([admission.runningOn('A'), admission.runningOn('B')]).toEqual([1, 1]);
    // Only on A: A's slot for m is taken, so it waits, though B had room for other models.
    const waiter = admission.enter('m', signal(), undefined, ['B', 'A']) as Ticket;
    expect(isTicket(waiter)).toBe(true);
    const other = admission.enter('n', signal(), undefined, ['B']) as Slot;
    expect(other.place).toBe('B');
    onA.release();
    const granted = await waiter.slot;
    expect(granted.place).toBe('A');
  });

  test('a slot moved by a failover is counted on its new instance', async () => {
    const admission = createAdmission({ ...limits, perModel: 1, total: 4 });
    const slot = admission.enter('m', signal(), undefined, ['A', 'B']) as Slot;
    slot.move('B');
    expect([slot.place, admission.runningOn('A'), admission.runningOn('B')]).toEqual(['B', 0, 1]);
    // A has room for m again; B's one slot for m is the moved one.
    expect((admission.enter('m', signal(), undefined, ['A']) as Slot).place).toBe('A');
    const waiter = admission.enter('m', signal(), undefined, ['B']) as Ticket;
    expect(isTicket(waiter)).toBe(true);
    slot.release();
    expect((await waiter.slot).place).toBe('B');
  });
});
