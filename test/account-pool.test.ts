// Static accounts are lent to cases one at a time, all of a case's at once and in the order asked;
// a case waiting for them is freed by an interruption.
import assert from "node:assert/strict";
import { AccountPool } from "../src/runner/runner.ts";

const account = (name: string, digit: number) => ({ username: name, password: `pw-${name}`, phone: `+33 6 12 34 56 7${digit}` });
const alice = account("alice", 1);
const bob = account("bob", 2);
const carol = account("carol", 3);

describe("AccountPool", () => {
  it("lends accounts to one case at a time, in order of asking", async () => {
    const pool = new AccountPool([alice]);
    const first = await pool.acquire(1);
    const order: string[] = [];
    const second = pool.acquire(1).then((a) => (order.push("second"), a));
    const third = pool.acquire(1).then((a) => (order.push("third"), a));
    pool.release(first);
    assert.deepEqual(await second, [alice]);
    pool.release([alice]);
    assert.deepEqual(await third, [alice]);
    assert.deepEqual(order, ["second", "third"]);
  });

  it("gives a case all its accounts at once, so two cases of two actors cannot deadlock", async () => {
    // One by one, case A could hold alice and case B bob, each waiting for the other's forever.
    const pool = new AccountPool([alice, bob]);
    const a = await pool.acquire(2);
    const b = pool.acquire(2);
    const c = pool.acquire(1);
    pool.release(a);
    assert.deepEqual(await b, [alice, bob]);
    // c asked after b: it waits until b gives its accounts back, even though one would do.
    let cGranted = false;
    void c.then(() => (cGranted = true));
    await Promise.resolve();
    assert.equal(cGranted, false);
    pool.release(await b);
    assert.equal((await c).length, 1);
  });

  it("refuses a case that needs more accounts than the pool has, rather than waiting forever", async () => {
    await assert.rejects(new AccountPool([alice, bob]).acquire(3), /needs 3 static accounts and the pool has 2/);
  });

  it("ends a wait as not-tested when the run is interrupted, and the accounts go to the next case", async () => {
    const pool = new AccountPool([bob, carol]);
    const held = await pool.acquire(2);
    const controller = new AbortController();
    const interrupted = pool.acquire(2, controller.signal);
    const next = pool.acquire(1);
    controller.abort("SIGINT");
    await assert.rejects(interrupted, (err: Error & { status?: string }) => {
      assert.equal(err.status, "not-tested");
      assert.equal(err.message, "interrupted by SIGINT while waiting for a static account: not started");
      return true;
    });
    pool.release(held);
    assert.deepEqual(await next, [bob]);
    assert.equal(pool.size, 1);
  });

  it("gives nothing to a case interrupted by the same signal, even if its accounts are free", async () => {
    // B's abort handler frees its place first; C, interrupted too, must not be handed bob then.
    const pool = new AccountPool([alice, bob]);
    await pool.acquire(1);
    const controller = new AbortController();
    const b = pool.acquire(2, controller.signal);
    const c = pool.acquire(1, controller.signal);
    controller.abort("SIGINT");
    await assert.rejects(b, /interrupted by SIGINT/);
    await assert.rejects(c, /interrupted by SIGINT/);
    assert.equal(pool.size, 1, "bob stays in the pool");
  });

  it("refuses at once when the run was interrupted before the wait began", async () => {
    const pool = new AccountPool([alice]);
    await pool.acquire(1);
    await assert.rejects(pool.acquire(1, AbortSignal.abort("SIGTERM")), /interrupted by SIGTERM/);
  });
});
