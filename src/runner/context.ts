// The state of one running case: its actors, their inboxes, labels, transcript and checks.
// Cases never share any of it (fresh actors per case).
import { randomBytes } from "node:crypto";
import type { CaseDefinition, ActorSpec } from "../cases/loader.ts";
import type { CheckResult, TranscriptEntry } from "../checks/model.ts";
import type { EndpointConfig } from "../config/config.ts";
import { XmppConnection } from "../protocol/connection.ts";
import { OmemoDevice } from "../protocol/omemo.ts";
import type { OmemoBundle } from "../protocol/omemo.ts";
import type { ContentDocument } from "../protocol/content.ts";
import { Element, bareJid } from "../protocol/xml.ts";
import { classifyNumber } from "../eligibility/classify.ts";
import { CONTENT_INVARIANTS, STANZA_INVARIANTS } from "../checks/invariants.ts";
import type { PolicyName } from "../eligibility/classify.ts";
import { randomSeed, seededRandom } from "./seed.ts";
import type { SeededRandom } from "./seed.ts";

/** A check failed: the case stops here with status fail. */
export class CheckFailed extends Error {
  constructor(readonly check: CheckResult) {
    super(`${check.requirement}: expected ${check.expected}, got ${check.actual}`);
    this.name = "CheckFailed";
  }
}

/** A precondition of the case is missing at the endpoint: status not-tested. */
export class NotTested extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NotTested";
  }
}

/** What the suite could make of an encrypted message it received. */
export interface Decryption {
  ok: boolean;
  payload?: Buffer | null;
  doc?: ContentDocument & Record<string, unknown>;
  parseError?: string;
  error?: string;
  senderDeviceId?: number;
}

export interface SentRecord {
  type: "sent";
  /** Built and encrypted but not sent yet (send with hold), until a release step sends it. */
  held?: Element;
  /** For media: the sha256 and the sniffed mime of the plaintext file, which a reflection must report. */
  media?: { sha256: string; mime: string };
  id: string;
  to: string;
  payload?: Buffer;
  xml: string;
  actor: string;
  device: number;
}

export interface ReceivedRecord {
  type: "received";
  stanza: Element;
  seq: number;
  decryption?: Decryption;
}

export interface HookRecord {
  type: "hook";
  json: unknown;
}

export type LabelRecord = SentRecord | ReceivedRecord | HookRecord;

export interface InboxItem {
  stanza: Element;
  seq: number;
  decryption?: Decryption;
}

export class ActorDevice {
  conn: XmppConnection | null = null;
  omemo: OmemoDevice | null = null;
  /** Whether this device is named on the actor's published device list. */
  listed = true;
  readonly inbox: InboxItem[] = [];
  private listeners = new Set<() => void>();
  /** Decryption keeps arrival order: each message waits for the previous one. */
  decryptQueue: Promise<void> = Promise.resolve();

  constructor(readonly actor: Actor, readonly index: number) {}

  get label(): string {
    return this.actor.devices.length > 1 ? `${this.actor.name}#${this.index}` : this.actor.name;
  }

  deliver(item: InboxItem): void {
    this.inbox.push(item);
    for (const listener of [...this.listeners]) listener();
  }

  onDeliver(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export class Actor {
  readonly devices: ActorDevice[];
  readonly username: string;
  readonly password: string;
  registered = false;
  /** Device ids of peers as last read from their device lists, by bare JID. */
  readonly peerDevices = new Map<string, number[]>();
  /** One-time prekey used when this actor's device started a session, by `jid:deviceId`. */
  readonly preKeysUsed = new Map<string, number>();
  /** The peer bundles this actor's sessions were started from, by `jid:deviceId`. */
  readonly bundlesUsed = new Map<string, OmemoBundle>();

  constructor(readonly name: string, readonly spec: ActorSpec, readonly phone: string, account: { username: string; password: string }, readonly domain: string) {
    this.devices = Array.from({ length: spec.devices ?? 1 }, (_, i) => new ActorDevice(this, i));
    this.username = account.username;
    this.password = account.password;
  }

  get jid(): string {
    return `${this.username}@${this.domain}`;
  }

  device(index = 0): ActorDevice {
    const device = this.devices[index];
    if (!device) throw new Error(`actor ${this.name} has no device ${index}`);
    return device;
  }

  connected(index = 0): ActorDevice & { conn: XmppConnection; omemo: OmemoDevice } {
    const device = this.device(index);
    if (!device.conn || !device.omemo) throw new Error(`actor ${this.name} device ${index} is not connected: add a connect step first`);
    return device as ActorDevice & { conn: XmppConnection; omemo: OmemoDevice };
  }
}

/** Fill `#` placeholders of a phone pattern with digits drawn from `random` (the case's "phone" stream). */
export function expandPhone(pattern: string, random: SeededRandom = seededRandom(randomSeed(), "phone")): string {
  return pattern.replace(/#/g, () => String(random.int(10)));
}

export class CaseContext {
  readonly transcript: TranscriptEntry[] = [];
  readonly checks: CheckResult[] = [];
  readonly invariantFailures: CheckResult[] = [];
  /**
   * Set when the case has its result (steps done, or stopped by its deadline or an interruption).
   * A step still running then, e.g. one whose wait ends because teardown closed its connection,
   * must not add a check: "nothing arrived" would be a failure the suite made up.
   */
  ended = false;
  readonly actors = new Map<string, Actor>();
  readonly labels = new Map<string, LabelRecord>();
  readonly startedAt = Date.now();
  /** Secrets of this case (generated passwords) that must never reach an artifact. */
  readonly secrets: string[] = [];
  timeoutWaitMs = 0;
  currentStep = "";
  private seq = 0;
  /** A user that does not exist at the endpoint, stable for the case. */
  private readonly nobodyJid = `tpc-nobody-${randomBytes(6).toString("hex")}@`;
  private readonly entryByElement = new WeakMap<Element, TranscriptEntry>();

  /**
   * One-time prekeys of peer devices already used by any case of this run (`jid:deviceId:preKeyId`).
   * Cases running in parallel would otherwise pick the same prekey now and then, and the second
   * key exchange would rightly be refused: a collision of the suite's own making, not the partner's.
   */
  readonly claimedPreKeys: Set<string>;

  /** The run seed (RunInfo.seed); a context made without one draws its own. */
  readonly seed: number;
  private readonly streams = new Map<string, SeededRandom>();

  constructor(readonly caseDef: CaseDefinition, readonly config: EndpointConfig, claimedPreKeys: Set<string> = new Set(), seed: number = randomSeed()) {
    this.claimedPreKeys = claimedPreKeys;
    this.seed = seed;
  }

  /** This case's stream of seeded choices for one purpose ("phone", "prekey", "burst"); the same object on every call. */
  random(purpose: string): SeededRandom {
    let stream = this.streams.get(purpose);
    if (!stream) {
      stream = seededRandom(this.seed, `${this.caseDef.id}/${purpose}`);
      this.streams.set(purpose, stream);
    }
    return stream;
  }

  /**
   * Pick a one-time prekey of a peer device that no case of this run has used, with the case's
   * "prekey" stream. The candidates are sorted, so the choice depends on the seed and the free ids,
   * not on the order the bundle lists them in.
   */
  claimPreKey(jid: string, deviceId: number, available: number[]): number | undefined {
    const free = available.filter((id) => !this.claimedPreKeys.has(`${jid}:${deviceId}:${id}`)).sort((a, b) => a - b);
    if (free.length === 0) return undefined;
    const chosen = free[this.random("prekey").int(free.length)]!;
    this.claimedPreKeys.add(`${jid}:${deviceId}:${chosen}`);
    return chosen;
  }

  record(actor: string, direction: "in" | "out", xmlText: string, element?: Element, note?: string): TranscriptEntry {
    const entry: TranscriptEntry = { seq: ++this.seq, t: Date.now() - this.startedAt, actor, direction, xml: xmlText };
    if (note) entry.note = note;
    this.transcript.push(entry);
    if (element) this.entryByElement.set(element, entry);
    return entry;
  }

  entryOf(element: Element): TranscriptEntry | undefined {
    return this.entryByElement.get(element);
  }

  /** Record a check; a failing check stops the case. */
  check(requirement: string, ok: boolean, expected: string, actual: string, evidence: number[] = []): void {
    const result = this.addCheck(requirement, ok, expected, actual, evidence);
    if (!ok) throw new CheckFailed(result);
  }

  /** Record a check without stopping the case when it fails (the step records more checks first). */
  checkAndGoOn(requirement: string, ok: boolean, expected: string, actual: string, evidence: number[] = []): void {
    this.addCheck(requirement, ok, expected, actual, evidence);
  }

  private addCheck(requirement: string, ok: boolean, expected: string, actual: string, evidence: number[]): CheckResult {
    if (this.ended) throw new Error("the case has ended: a late step's check is not recorded");
    const result: CheckResult = { requirement, ok, step: this.currentStep, expected, actual, evidence };
    this.checks.push(result);
    return result;
  }

  /** Whether a JID is a partner user: an account of the endpoint's domain that is no actor of this case. */
  private isPartnerUser(jid: unknown): boolean {
    if (typeof jid !== "string" || !jid.includes("@")) return false;
    const bare = bareJid(jid);
    if (bare.split("@")[1] !== this.config.domain || bare.startsWith(this.nobodyJid)) return false;
    return ![...this.actors.values()].some((a) => a.jid === bare);
  }

  /** Record a breach of a run-wide invariant: once per requirement and case (the first offending stanza). */
  private breach(requirement: string, expected: string, actual: string, seq: number): void {
    // After the case has its result (teardown), what arrives is not judged: the result is fixed.
    if (this.ended || this.invariantFailures.some((f) => f.requirement === requirement)) return;
    const result: CheckResult = { requirement, ok: false, step: this.currentStep || "(run-wide invariant)", expected, actual, evidence: [seq] };
    this.invariantFailures.push(result);
    this.checks.push(result);
  }

  /** Run-wide invariants (src/checks/invariants.ts) observed on every stanza from the endpoint. */
  observeInbound(element: Element, entry: TranscriptEntry): void {
    const origin = { fromPartnerUser: this.isPartnerUser(element.attrs.from) };
    for (const invariant of STANZA_INVARIANTS) {
      const problem = invariant.inspect(element, origin);
      if (problem) this.breach(invariant.requirement, invariant.expected, problem, entry.seq);
    }
  }

  /** Run-wide invariants on a content document decrypted from a message. */
  observeContent(stanza: Element, doc: Record<string, unknown>, seq: number): void {
    if (!this.isPartnerUser(stanza.attrs.from)) return;
    for (const invariant of CONTENT_INVARIANTS) {
      const problem = invariant.inspect(doc);
      if (problem) this.breach(invariant.requirement, invariant.expected, `${problem} from a partner user`, seq);
    }
  }

  actor(name: string): Actor {
    const actor = this.actors.get(name);
    if (!actor) throw new Error(`actor ${name} is not declared`);
    return actor;
  }

  /** The bare JID a case's peer name stands for. */
  resolve(target: string): string {
    if (target === "reflector") {
      if (!this.config.reflector) throw new NotTested("the endpoint config names no reflector");
      return this.config.reflector;
    }
    if (target === "optout") {
      if (!this.config.optout) throw new NotTested("the endpoint config names no opted-out user");
      return this.config.optout;
    }
    if (target === "server") return this.config.domain;
    if (target === "nobody") return this.nobodyJid + this.config.domain;
    if (target.startsWith("jid:")) return target.slice(4);
    return this.actor(target).jid;
  }

  /**
   * Replace {{name}} with the bare JID of reflector/optout/server/nobody/an actor, {{domain}} with
   * the domain, and {{region:actor}} with the region the suite's classifier gives the actor's number.
   */
  template(text: string): string {
    return text.replace(/\{\{\s*([a-z][a-z0-9]*)(?::([a-z][a-z0-9]*))?\s*\}\}/g, (_, name: string, arg: string | undefined) => {
      if (name === "region" && arg) return classifyNumber(this.actor(arg).phone, this.config.policy as PolicyName).region;
      if (name === "domain") return this.config.domain;
      return this.resolve(name);
    });
  }

  sent(label: string): SentRecord {
    const record = this.labels.get(label);
    if (!record || record.type !== "sent") throw new Error(`label ${label} is not a sent message`);
    return record;
  }

  received(label: string): ReceivedRecord {
    const record = this.labels.get(label);
    if (!record || record.type !== "received") throw new Error(`label ${label} is not a received message`);
    return record;
  }

  /** Id a stanza label refers to, whatever kind of record it is. */
  idOf(label: string): string {
    const record = this.labels.get(label);
    if (!record) throw new Error(`unknown label ${label}`);
    if (record.type === "sent") return record.id;
    if (record.type === "received") return String(record.stanza.attrs.id ?? "");
    throw new Error(`label ${label} does not name a stanza`);
  }

  isFrom(element: Element, target: string | undefined): boolean {
    if (!target) return true;
    const from = element.attrs.from as string | undefined;
    if (target === "server") return !from || from === this.config.domain;
    return from !== undefined && bareJid(from) === this.resolve(target);
  }
}
