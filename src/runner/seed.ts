// The run seed and the seeded choices derived from it, so a run can be replayed with the same
// choices (`chatconform run --seed N`). Only the suite's non-cryptographic choices use it: the
// order of a shuffled burst, which free one-time prekey a session uses, the digits of a phone
// pattern. Keys, passwords, nonces and unique names (usernames, resources, barrier labels) stay
// from crypto.randomBytes: replaying them would reuse secrets or collide with the first run.
import { createHmac, randomBytes } from "node:crypto";

/** Largest run seed: seeds are unsigned 32-bit integers. */
export const MAX_SEED = 0xffff_ffff;

/** A fresh run seed (used when no --seed is given; the report records it either way). */
export function randomSeed(): number {
  return randomBytes(4).readUInt32BE();
}

export function isSeed(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= MAX_SEED;
}

/** A deterministic stream of numbers. Not for anything secret. */
export interface SeededRandom {
  /** The stream's name: `<case id>/<purpose>`. */
  readonly stream: string;
  /** A uniform float in [0, 1). */
  next(): number;
  /** A uniform integer in [0, n). */
  int(n: number): number;
}

/**
 * The stream `stream` of run seed `seed`. Draw i is the first 32 bits of
 * HMAC-SHA256(key = "chatconform-seed-1:<seed>", "<stream>:<i>") divided by 2^32, so that anyone can
 * recompute a choice from the report (docs/evidence.md). Each case and purpose has its own stream:
 * cases run in parallel in any order, and a case's choices must not depend on the others'.
 */
export function seededRandom(seed: number, stream: string): SeededRandom {
  if (!isSeed(seed)) throw new RangeError(`seed ${seed} is not an integer from 0 to ${MAX_SEED}`);
  const key = `chatconform-seed-1:${seed}`;
  let counter = 0;
  const next = () => createHmac("sha256", key).update(`${stream}:${counter++}`).digest().readUInt32BE(0) / 2 ** 32;
  return {
    stream,
    next,
    int(n: number) {
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`int(${n}): n must be a positive integer`);
      return Math.floor(next() * n);
    },
  };
}
