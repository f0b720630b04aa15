// Static accounts are lent to one case at a time; a case waiting for one is freed by an interruption.
import assert from "node:assert/strict";
import { AccountPool } from "../src/runner/runner.ts";

const alice = { username: "alice", password: "pw-a", phone: "+33 6 12 34 56 78" };
const bob = { username: "bob", password: "pw-b", phone: "+33 6 12 34 56 79" };

describe("AccountPool", () => {
  it("lends each account to one case at a time, in order of asking", async () => {
    const pool = new AccountPool([alice]);
    const first = await pool.acquire();
    const order: string[] = [];
    const second = pool.acquire().then((a) => (order.push("second"), a));
    const third = pool.acquire().then((a) => (order.push("third"), a));
    pool.release(first);
    assert.equal(await second, alice);
    pool.release(alice);
    assert.equal(await third, alice);
    assert.deepEqual(order, ["second", "third"]);
  });

  it("ends a wait as not-tested when the run is interrupted, and the account goes to the next case", async () => {
    const pool = new AccountPool([bob]);
    const held = await pool.acquire();
    const controller = new AbortController();
    const interrupted = pool.acquire(controller.signal);
    const next = pool.acquire();
    controller.abort("SIGINT");
    await assert.rejects(interrupted, (err: Error & { status?: string }) => {
      assert.equal(err.status, "not-tested");
      assert.equal(err.message, "interrupted by SIGINT while waiting for a static account: not started");
      return true;
    });
    pool.release(held);
    assert.equal(await next, bob);
    assert.equal(pool.size, 0);
  });

  it("refuses at once when the run was interrupted before the wait began", async () => {
    const pool = new AccountPool([alice]);
    await pool.acquire();
    await assert.rejects(pool.acquire(AbortSignal.abort("SIGTERM")), /interrupted by SIGTERM/);
  });
});
