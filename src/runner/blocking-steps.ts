// Steps of the blocking catalogue (TPC/1 §10, XEP-0191): the reflector blocks a gatekeeper user, a
// block made while a message is in flight, the reflector's reconnect, sessions from bundles read
// before a block made them unreadable, and the partner's block list as the `state` hook reports it.
import { parseBundleElement } from "../protocol/omemo.ts";
import { NS, bareJid, xml } from "../protocol/xml.ts";
import type { XmppConnection } from "../protocol/connection.ts";
import type { ActorDevice, CaseContext } from "./context.ts";
import { NotTested } from "./context.ts";
import { callHook } from "./steps.ts";
import type { StepHandler } from "./steps.ts";

const truncate = (text: string, max = 300) => (text.length > max ? `${text.slice(0, max)}…` : text);

/**
 * The reflector is one partner user shared by every case of a run, so its reconnect (BLK-05) is an
 * event every running case sees: a partner that forgets its blocks on reconnect would make another
 * case that relies on a block fail under the wrong requirement. A case that makes a block holds a
 * lease until the stream it made the block from closes (the runner closes every stream when a case
 * ends); a reconnect waits until no other case holds one, and blocks asked for meanwhile wait for it.
 */
class ReflectorLeases {
  private readonly holders = new Set<CaseContext>();
  /** Cases waiting for their own reconnect: their leases do not hold up another case's reconnect. */
  private readonly reconnecting = new Set<CaseContext>();
  private current: Promise<void> | null = null;
  private readonly listeners = new Set<() => void>();

  async hold(ctx: CaseContext, conn: XmppConnection): Promise<void> {
    if (this.holders.has(ctx)) return;
    while (this.current) await this.current;
    this.holders.add(ctx);
    const release = () => {
      this.holders.delete(ctx);
      for (const listener of [...this.listeners]) listener();
    };
    if (conn.closed) release();
    else conn.once("close", release);
  }

  /** Run `reconnect` once no other case relies on a block; leases asked for meanwhile wait for it. */
  async exclusive(ctx: CaseContext, reconnect: () => Promise<void>): Promise<void> {
    this.reconnecting.add(ctx);
    try {
      while (this.current) await this.current;
      let done!: () => void;
      this.current = new Promise<void>((resolve) => (done = resolve));
      try {
        await this.othersReleased(ctx);
        await reconnect();
      } finally {
        this.current = null;
        done();
      }
    } finally {
      this.reconnecting.delete(ctx);
    }
  }

  private othersReleased(ctx: CaseContext): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (![...this.holders].every((h) => h === ctx || this.reconnecting.has(h))) return;
        this.listeners.delete(check);
        resolve();
      };
      this.listeners.add(check);
      check();
    });
  }
}

const leases = new ReflectorLeases();

/** block: the reflector blocks `jid` (its `block` hook, a bare JID on its server's XEP-0191 list). */
const block: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  await leases.hold(ctx, actor.connected(0).conn);
  const outcome = await callHook(ctx, actor, "block", { jid: p.jid });
  if (outcome.error) throw new Error(`hook block failed: ${outcome.error.message}`);
};

/**
 * block-in-flight: the actor asks the reflector to block the actor itself and, in the same write,
 * sends the messages built with `send … hold: true`. The server routes the call and the messages
 * before the block exists (the reflector makes it only when it handles the call), so the messages
 * reach the partner user and are handled after the block: in flight. The hook's answer is not
 * awaited (once the block exists a compliant server drops it); a ping on the same stream proves the
 * server has routed everything that was written. A message that bounced was not in flight: the case
 * is then not tested.
 */
const blockInFlight: StepHandler = async (ctx, p) => {
  if (!ctx.config.hooks.includes("block")) throw new NotTested('the endpoint exposes no "block" hook');
  const actor = ctx.actor(p.actor as string);
  const device = actor.connected(0);
  const records = (p.refs as string[]).map((ref) => {
    const record = ctx.sent(ref);
    if (!record.held) throw new Error(`${ref} was not held (send it with hold: true)`);
    if (record.device !== 0) throw new Error(`${ref} was built on device ${record.device}; block-in-flight sends from device 0`);
    return record;
  });
  await leases.hold(ctx, device.conn);
  const form = xml("x", { xmlns: NS.xdata, type: "submit" }, xml("field", { var: "jid" }, xml("value", {}, actor.jid)));
  const call = xml("iq", { type: "set", to: ctx.resolve("reflector"), id: device.conn.nextId() },
    xml("command", { xmlns: NS.commands, node: `${NS.tpcTest}:block`, action: "execute" }, form));
  device.conn.sendMany([call, ...records.map((r) => r.held!)]);
  const callEntry = ctx.entryOf(call);
  if (callEntry) callEntry.note = `block hook for ${actor.name} itself, sent in one write with ${(p.refs as string[]).join(", ")}`;
  for (const record of records) {
    const entry = ctx.entryOf(record.held!);
    if (entry && record.payload) entry.decrypted = record.payload.toString("utf8");
    record.held = undefined;
  }
  await device.conn.iq(xml("iq", { type: "get", to: ctx.config.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })));
  // A bounce came before the ping's answer: the server had the block already, nothing was in flight.
  for (const [i, record] of records.entries()) {
    const bounce = device.inbox.find((item) => item.stanza.attrs.type === "error" && item.stanza.attrs.id === record.id);
    if (bounce) throw new NotTested(`precondition not met: ${(p.refs as string[])[i]} reached the server after the block was made (it bounced), so it was not in flight`);
  }
};

/**
 * reconnect-reflector: the reflector's `reconnect` hook, then its `state` hook until it answers
 * (retried with backoff while the reflector is offline and its server answers service-unavailable,
 * up to the stanza timeout). A partner handles hook calls in order, so the answer comes from the
 * reconnected client. Other cases' blocks are not in the way: the reconnect waits for them to end.
 */
const reconnectReflector: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  if (!ctx.config.hooks.includes("state")) throw new NotTested('the endpoint exposes no "state" hook');
  await leases.exclusive(ctx, async () => {
    const outcome = await callHook(ctx, actor, "reconnect");
    if (outcome.error) throw new Error(`hook reconnect failed: ${outcome.error.message}`);
    const started = Date.now();
    let delay = 10;
    for (;;) {
      const state = await callHook(ctx, actor, "state");
      if (!state.error) return;
      if (state.error.condition !== "service-unavailable") throw new Error(`hook state after the reconnect failed: ${state.error.message}`);
      const elapsed = Date.now() - started;
      if (elapsed >= ctx.config.timeouts.stanza) {
        ctx.timeoutWaitMs += elapsed;
        throw new Error(`the reflector was still offline ${elapsed} ms after its reconnect`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 250);
    }
  });
};

async function ownBundle(device: ActorDevice & { conn: XmppConnection }, jid: string, deviceId: number) {
  const result = await device.conn.iq(xml("iq", { type: "get", to: jid }, xml("pubsub", { xmlns: NS.pubsub }, xml("items", { node: `${NS.omemoBundles}:${deviceId}` }))));
  const bundleEl = result.getChild("pubsub", NS.pubsub)?.getChild("items")?.getChild("item")?.getChild("bundle", NS.omemo);
  const parsed = bundleEl ? parseBundleElement(bundleEl) : { bundle: undefined, problems: ["no bundle item"] };
  if (!parsed.bundle) throw new Error(`own device ${deviceId} has no usable bundle: ${parsed.problems.join("; ")}`);
  return parsed.bundle;
}

/**
 * cached-session: a Signal session for this device with every device of the peer, built from the
 * bundles this actor read earlier (a session step before a block made them unreadable), each with a
 * one-time prekey no case of the run has used; and with the actor's own other devices, as `session`.
 */
const cachedSession: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const device = actor.connected((p.device as number | undefined) ?? 0);
  const jid = ctx.resolve(p.with as string);
  const cached = [...actor.bundlesUsed.entries()].filter(([key]) => key.startsWith(`${jid}:`));
  if (cached.length === 0) throw new Error(`${actor.name} read no bundle of ${p.with} earlier: add a session step before the block`);
  for (const [key, bundle] of cached) {
    const deviceId = Number(key.slice(jid.length + 1));
    const preKeyId = ctx.claimPreKey(jid, deviceId, bundle.preKeys.map((k) => k.id));
    if (preKeyId === undefined) throw new NotTested(`precondition not met: every one-time prekey of ${p.with} device ${deviceId} read earlier was already used in this run`);
    await device.omemo.startSession(jid, deviceId, bundle, { preKeyId });
    actor.preKeysUsed.set(key, preKeyId);
  }
  for (const other of actor.devices) {
    if (other === device || !other.omemo) continue;
    await device.omemo.startSession(actor.jid, other.omemo.deviceId, await ownBundle(device, actor.jid, other.omemo.deviceId));
  }
};

/**
 * blocklist: the reflector's `state` hook; its `blocked` list (the partner user's block list) names
 * the bare JID of each peer of `lists`, and nothing that blocks a peer of `lacks` (its bare JID,
 * one of its full JIDs, or its domain).
 */
const blocklist: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const requirement = p.requirement as string;
  const outcome = await callHook(ctx, actor, "state");
  if (outcome.error) throw new Error(`hook state failed: ${outcome.error.message}`);
  const evidence = outcome.seq ? [outcome.seq] : [];
  const blocked = (outcome.json as { blocked?: unknown } | undefined)?.blocked;
  if (!Array.isArray(blocked)) {
    ctx.check(requirement, false, "state.blocked: the partner user's block list", `no blocked list in ${truncate(JSON.stringify(outcome.json))}`, evidence);
    return;
  }
  const items = blocked.map(String);
  for (const peer of (p.lists as string[] | undefined) ?? []) {
    const jid = ctx.resolve(peer);
    ctx.check(requirement, items.includes(jid), `state.blocked names ${peer}'s bare JID ${jid}`, `blocked: ${truncate(JSON.stringify(items))}`, evidence);
  }
  for (const peer of (p.lacks as string[] | undefined) ?? []) {
    const jid = ctx.resolve(peer);
    const found = items.filter((item) => bareJid(item) === jid || item === jid.split("@")[1]);
    ctx.check(requirement, found.length === 0, `state.blocked holds nothing that blocks ${peer} (${jid})`, found.length ? `it holds ${found.join(", ")}` : `blocked: ${truncate(JSON.stringify(items))}`, evidence);
  }
};

export const BLOCKING_STEP_HANDLERS: Record<string, StepHandler> = {
  block, "block-in-flight": blockInFlight, "reconnect-reflector": reconnectReflector, "cached-session": cachedSession, blocklist,
};
