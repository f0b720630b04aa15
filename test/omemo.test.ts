import assert from "node:assert/strict";
import {
  MAX_KEY_ID, OmemoDecryptError, OmemoDevice, buildEncryptedMessage, bundleToElement, deviceListElement,
  parseBundleElement, parseDeviceListElement, verifySignedPreKeySignature,
} from "../src/protocol/omemo.ts";
import type { OmemoBundle } from "../src/protocol/omemo.ts";
import { ENCRYPTED_NOTICE, NS, parseXml, xml } from "../src/protocol/xml.ts";
import type { Element } from "../src/protocol/xml.ts";

const ALICE = "alice@gatekeeper.example";
const BOB = "bob@partner.example";
const PRE_KEYS = 10;

const text = (s: string) => Buffer.from(s, "utf8");
const str = (bytes: Uint8Array | null) => (bytes === null ? null : Buffer.from(bytes).toString("utf8"));
const to = (d: OmemoDevice) => [{ jid: d.jid, deviceId: d.deviceId }];

async function device(jid: string, deviceId?: number): Promise<OmemoDevice> {
  return OmemoDevice.generate({ jid, deviceId, preKeyCount: PRE_KEYS });
}

/** Alice and Bob with a session Alice started from Bob's bundle (nothing sent yet). */
async function pair(): Promise<{ alice: OmemoDevice; bob: OmemoDevice }> {
  const alice = await device(ALICE);
  const bob = await device(BOB);
  await alice.startSession(bob.jid, bob.deviceId, bob.bundle());
  return { alice, bob };
}

/** Fully established: the PreKey message went one way and a reply came back. */
async function established(): Promise<{ alice: OmemoDevice; bob: OmemoDevice }> {
  const { alice, bob } = await pair();
  await bob.decrypt(ALICE, await alice.encrypt(text("hello"), to(bob)));
  await alice.decrypt(BOB, await bob.encrypt(text("hi"), to(alice)));
  return { alice, bob };
}

function keyFor(encrypted: Element, rid: number): Element {
  const key = encrypted.getChild("header")!.getChildren("key").find((k) => k.attrs.rid === String(rid));
  assert.ok(key, `a <key rid='${rid}'/>`);
  return key;
}

/** A deep copy through serialization, so tampering one copy leaves the other intact. */
function copy(el: Element): Element {
  return parseXml(el.toString());
}

function flipBase64Byte(el: Element, fromEnd: number): void {
  const bytes = Buffer.from(el.getText(), "base64");
  bytes[bytes.length - fromEnd]! ^= 0x01;
  el.children = [bytes.toString("base64")];
}

async function rejection(promise: Promise<unknown>): Promise<OmemoDecryptError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof OmemoDecryptError, `expected OmemoDecryptError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the decryption to fail");
}

/** Protobuf field numbers in order of appearance (varint and length-delimited fields only). */
function protobufFields(bytes: Uint8Array): { field: number; value: number | Uint8Array }[] {
  const out: { field: number; value: number | Uint8Array }[] = [];
  let pos = 0;
  const varint = () => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return result;
      shift += 7;
    }
  };
  while (pos < bytes.length) {
    const tag = varint();
    const wire = tag & 7;
    if (wire === 0) out.push({ field: tag >>> 3, value: varint() });
    else if (wire === 2) {
      const len = varint();
      out.push({ field: tag >>> 3, value: bytes.subarray(pos, pos + len) });
      pos += len;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  return out;
}

describe("OMEMO device", function () {
  this.timeout(30000);

  it("generates distinct devices with in-range ids and the requested number of prekeys", async () => {
    const a = await device(ALICE);
    const b = await device(ALICE);
    const fixed = await device(ALICE, 4242);
    for (const d of [a, b]) {
      assert.ok(Number.isInteger(d.deviceId) && d.deviceId >= 1 && d.deviceId <= MAX_KEY_ID);
    }
    assert.equal(fixed.deviceId, 4242);
    assert.notDeepEqual(a.bundle().identityKey, b.bundle().identityKey);
    assert.notDeepEqual(a.bundle().preKeys[0]!.publicKey, b.bundle().preKeys[0]!.publicKey);
    const bundle = a.bundle();
    assert.equal(bundle.identityKey.length, 33);
    assert.equal(bundle.identityKey[0], 0x05);
    assert.equal(bundle.signedPreKey.signature.length, 64);
    assert.equal(bundle.preKeys.length, PRE_KEYS);
    assert.equal(new Set(bundle.preKeys.map((k) => k.id)).size, PRE_KEYS);
    assert.ok(bundle.preKeys.every((k) => k.publicKey.length === 33 && k.publicKey[0] === 0x05));
    await assert.rejects(OmemoDevice.generate({ jid: ALICE, deviceId: 0 }), RangeError);
    await assert.rejects(OmemoDevice.generate({ jid: ALICE, deviceId: MAX_KEY_ID + 1 }), RangeError);
  });

  it("round-trips both ways: PreKeyWhisperMessage first, WhisperMessage after the reply", async () => {
    const { alice, bob } = await pair();
    assert.equal(await alice.hasSession(BOB, bob.deviceId), true);
    assert.equal(await bob.hasSession(ALICE, alice.deviceId), false);

    const first = await alice.encrypt(text("hello bob"), to(bob));
    assert.equal(keyFor(first, bob.deviceId).attrs.prekey, "true");
    const got = await bob.decrypt(ALICE, first);
    assert.deepEqual({ ...got, payload: str(got.payload), ratchetKey: undefined }, { senderDeviceId: alice.deviceId, payload: "hello bob", preKey: true, identityChanged: false, counter: 0, ratchetKey: undefined });
    assert.equal(await bob.hasSession(ALICE, alice.deviceId), true);

    const reply = await bob.encrypt(text("hello alice"), to(alice));
    assert.equal(keyFor(reply, alice.deviceId).attrs.prekey, undefined);
    const back = await alice.decrypt(BOB, reply);
    assert.equal(str(back.payload), "hello alice");
    assert.equal(back.preKey, false);
    assert.equal(back.senderDeviceId, bob.deviceId);

    const after = await alice.encrypt(text("again"), to(bob));
    assert.equal(keyFor(after, bob.deviceId).attrs.prekey, undefined, "after a reply Alice sends WhisperMessages");
    const again = await bob.decrypt(ALICE, after);
    assert.equal(str(again.payload), "again");
    assert.equal(again.preKey, false);
  });

  it("builds the legacy wire format: sid, 12-byte iv, tagless payload, every protobuf field encoded", async () => {
    const { alice, bob } = await pair();
    const plaintext = text("twelve bytes");
    const encrypted = await alice.encrypt(plaintext, to(bob));
    assert.equal(encrypted.name, "encrypted");
    assert.equal(encrypted.attrs.xmlns, NS.omemo);
    const header = encrypted.getChild("header")!;
    assert.equal(header.attrs.sid, String(alice.deviceId));
    assert.equal(Buffer.from(header.getChildText("iv")!, "base64").length, 12);
    assert.equal(Buffer.from(encrypted.getChildText("payload")!, "base64").length, plaintext.length, "ciphertext without the GCM tag");

    const signal = Buffer.from(keyFor(encrypted, bob.deviceId).getText(), "base64");
    assert.equal(signal[0], 0x33, "version byte 3|3");
    const outer = protobufFields(signal.subarray(1));
    assert.deepEqual(outer.map((f) => f.field).sort(), [1, 2, 3, 4, 5, 6], "registrationId, preKeyId, signedPreKeyId, baseKey, identityKey, message");
    assert.deepEqual(new Uint8Array(outer.find((f) => f.field === 3)!.value as Uint8Array), alice.bundle().identityKey);
    const inner = outer.find((f) => f.field === 4)!.value as Uint8Array;
    assert.equal(inner[0], 0x33);
    const whisper = protobufFields(inner.subarray(1, inner.length - 8)); // 8-byte MAC at the end
    assert.deepEqual(whisper.map((f) => f.field), [1, 2, 3, 4], "ephemeralKey, counter, previousCounter, ciphertext");
    assert.equal(whisper.find((f) => f.field === 2)!.value, 0, "counter 0 is encoded, not omitted");
  });

  it("wraps the element in a TPC/1 message with EME, store hint, receipt request and the fixed notice", async () => {
    const { alice, bob } = await pair();
    const encrypted = await alice.encrypt(text("x"), to(bob));
    const message = buildEncryptedMessage({ to: BOB, id: "m1", encrypted });
    assert.equal(message.attrs.type, "chat");
    assert.equal(message.attrs.id, "m1");
    assert.equal(message.attrs.to, BOB);
    assert.equal(message.getChild("encrypted", NS.omemo), encrypted);
    assert.equal(message.getChild("encryption", NS.eme)?.attrs.namespace, NS.omemo);
    assert.ok(message.getChild("store", NS.hints));
    assert.ok(message.getChild("request", NS.receipts));
    assert.equal(message.getChildText("body"), ENCRYPTED_NOTICE);
    const quiet = buildEncryptedMessage({ to: BOB, id: "m2", from: `${ALICE}/r`, encrypted, requestReceipt: false });
    assert.equal(quiet.getChild("request", NS.receipts), undefined);
    assert.equal(quiet.attrs.from, `${ALICE}/r`);
  });

  it("refuses to encrypt without a session and to start one from a bundle with a bad signature", async () => {
    const alice = await device(ALICE);
    const bob = await device(BOB);
    await assert.rejects(alice.encrypt(text("x"), to(bob)), /no OMEMO session with bob@partner\.example/);
    const forged = bob.bundle();
    forged.signedPreKey.signature[10]! ^= 0x01;
    await assert.rejects(alice.startSession(BOB, bob.deviceId, forged), /signature does not verify/);
    assert.equal(await alice.hasSession(BOB, bob.deviceId), false);
    const chosen = bob.bundle().preKeys[3]!.id;
    assert.deepEqual(await alice.startSession(BOB, bob.deviceId, bob.bundle(), { preKeyId: chosen }), { preKeyId: chosen });
    await assert.rejects(alice.startSession(BOB, bob.deviceId, bob.bundle(), { preKeyId: 999999 }), /no one-time prekey 999999/);
  });

  it("reports an exact replay as replay, for WhisperMessages and for the consumed PreKey message", async () => {
    const { alice, bob } = await pair();
    const first = await alice.encrypt(text("one"), to(bob));
    await bob.decrypt(ALICE, copy(first));
    assert.equal((await rejection(bob.decrypt(ALICE, copy(first)))).reason, "replay");

    await alice.decrypt(BOB, await bob.encrypt(text("reply"), to(alice)));
    const whisper = await alice.encrypt(text("two"), to(bob));
    assert.equal(str((await bob.decrypt(ALICE, copy(whisper))).payload), "two");
    const err = await rejection(bob.decrypt(ALICE, copy(whisper)));
    assert.equal(err.reason, "replay");
    assert.match(err.message, /already used/);
  });

  it("rejects a flipped Signal ciphertext byte (bad-mac) and keeps the session for the next good message", async () => {
    const { alice, bob } = await established();
    const good = await alice.encrypt(text("intact"), to(bob));
    const tampered = copy(good);
    flipBase64Byte(keyFor(tampered, bob.deviceId), 12); // inside the ciphertext, before the 8-byte MAC
    assert.equal((await rejection(bob.decrypt(ALICE, tampered))).reason, "bad-mac");
    assert.equal(str((await bob.decrypt(ALICE, good)).payload), "intact");
    assert.equal(str((await bob.decrypt(ALICE, await alice.encrypt(text("next"), to(bob)))).payload), "next");
  });

  it("rejects a flipped payload byte (payload-auth-failed); the next message still decrypts", async () => {
    const { alice, bob } = await established();
    const tampered = await alice.encrypt(text("payload"), to(bob));
    flipBase64Byte(tampered.getChild("payload")!, 1);
    assert.equal((await rejection(bob.decrypt(ALICE, tampered))).reason, "payload-auth-failed");
    assert.equal(str((await bob.decrypt(ALICE, await alice.encrypt(text("fine"), to(bob)))).payload), "fine");
  });

  it("reports malformed input and an unknown sender as no-session", async () => {
    const { alice, bob } = await established();
    const bad = await alice.encrypt(text("x"), to(bob));
    keyFor(bad, bob.deviceId).children = ["***not base64***"];
    assert.equal((await rejection(bob.decrypt(ALICE, bad))).reason, "malformed");
    const noHeader = xml("encrypted", { xmlns: NS.omemo }, xml("payload", {}, "AAAA"));
    assert.equal((await rejection(bob.decrypt(ALICE, noHeader))).reason, "malformed");

    const carol = await device("carol@partner.example");
    await carol.startSession(BOB, bob.deviceId, bob.bundle());
    const fromCarol = await carol.encrypt(text("hi"), to(bob));
    delete keyFor(fromCarol, bob.deviceId).attrs.prekey; // read as a WhisperMessage: Bob has no session with Carol
    assert.equal((await rejection(bob.decrypt("carol@partner.example", fromCarol))).reason, "no-session");
  });

  it("decrypts out of order (3, 1, 2)", async () => {
    const { alice, bob } = await established();
    const m1 = await alice.encrypt(text("m1"), to(bob));
    const m2 = await alice.encrypt(text("m2"), to(bob));
    const m3 = await alice.encrypt(text("m3"), to(bob));
    assert.equal(str((await bob.decrypt(ALICE, m3)).payload), "m3");
    assert.equal(str((await bob.decrypt(ALICE, m1)).payload), "m1");
    assert.equal(str((await bob.decrypt(ALICE, m2)).payload), "m2");
  });

  it("decrypts PreKey messages out of order before any reply (3, 1, 2)", async () => {
    const { alice, bob } = await pair();
    const ms = [await alice.encrypt(text("p1"), to(bob)), await alice.encrypt(text("p2"), to(bob)), await alice.encrypt(text("p3"), to(bob))];
    assert.ok(ms.every((m) => keyFor(m, bob.deviceId).attrs.prekey === "true"));
    assert.equal(str((await bob.decrypt(ALICE, ms[2]!)).payload), "p3");
    assert.equal(str((await bob.decrypt(ALICE, ms[0]!)).payload), "p1");
    assert.equal(str((await bob.decrypt(ALICE, ms[1]!)).payload), "p2");
  });

  it("sends and receives an empty key-transport message (no <payload/>, payload null)", async () => {
    const { alice, bob } = await pair();
    const keyTransport = await alice.encrypt(null, to(bob));
    assert.equal(keyTransport.getChild("payload"), undefined);
    assert.ok(keyTransport.getChild("header")!.getChild("iv"));
    const got = await bob.decrypt(ALICE, keyTransport);
    assert.equal(got.payload, null);
    assert.equal(got.preKey, true);
    // The key transport established the session: Bob can now answer.
    assert.equal(str((await alice.decrypt(BOB, await bob.encrypt(text("ok"), to(alice)))).payload), "ok");
  });

  it("encrypts once for several devices of one JID; an unaddressed device gets no-key-for-device", async () => {
    const alice = await device(ALICE);
    const bob1 = await device(BOB, 101);
    const bob2 = await device(BOB, 102);
    const bob3 = await device(BOB, 103);
    await alice.startSession(BOB, 101, bob1.bundle());
    await alice.startSession(BOB, 102, bob2.bundle());
    const encrypted = await alice.encrypt(text("to both"), [{ jid: BOB, deviceId: 101 }, { jid: BOB, deviceId: 102 }]);
    assert.deepEqual(encrypted.getChild("header")!.getChildren("key").map((k) => k.attrs.rid).sort(), ["101", "102"]);
    assert.equal(str((await bob1.decrypt(ALICE, encrypted)).payload), "to both");
    assert.equal(str((await bob2.decrypt(ALICE, encrypted)).payload), "to both");
    const err = await rejection(bob3.decrypt(ALICE, encrypted));
    assert.equal(err.reason, "no-key-for-device");
    assert.match(err.message, /rid 103/);
  });

  it("removes a consumed prekey from the bundle, replenishes it under a new id and calls onBundleChanged", async () => {
    const alice = await device(ALICE);
    const bob = await device(BOB);
    const before = bob.bundle();
    const used = before.preKeys[2]!.id;
    let changes = 0;
    bob.onBundleChanged = () => { changes++; };
    await alice.startSession(BOB, bob.deviceId, before, { preKeyId: used });
    const first = await alice.encrypt(text("first"), to(bob));
    assert.equal(changes, 0, "nothing consumed before the message is decrypted");
    await bob.decrypt(ALICE, copy(first));
    assert.equal(changes, 1);
    const after = bob.bundle();
    assert.equal(after.preKeys.length, before.preKeys.length);
    assert.ok(!after.preKeys.some((k) => k.id === used), "consumed prekey is gone");
    const oldIds = new Set(before.preKeys.map((k) => k.id));
    const added = after.preKeys.filter((k) => !oldIds.has(k.id));
    assert.equal(added.length, 1);
    assert.ok(added[0]!.id > Math.max(...oldIds), "replacement uses a new id");

    // A second PreKey message (same session) consumes nothing more.
    await bob.decrypt(ALICE, await alice.encrypt(text("second"), to(bob)));
    assert.equal(changes, 1);

    // A new session built on the stale bundle with the consumed prekey is refused.
    const carol = await device("carol@gatekeeper.example");
    await carol.startSession(BOB, bob.deviceId, before, { preKeyId: used });
    const err = await rejection(bob.decrypt("carol@gatekeeper.example", await carol.encrypt(text("reuse"), to(bob))));
    assert.equal(err.reason, "bad-mac");
    assert.match(err.message, new RegExp(`one-time prekey ${used}`));
    assert.equal(await bob.hasSession("carol@gatekeeper.example", carol.deviceId), false, "no session from a refused message");
    assert.equal(changes, 1);
  });

  it("records a peer's identity change (and not for a forged key exchange that fails)", async () => {
    const { alice, bob } = await established();
    const oldKey = alice.knownIdentity(BOB, bob.deviceId);
    assert.deepEqual(oldKey, bob.bundle().identityKey);
    assert.deepEqual(alice.identityChanges(), []);

    let bobRepublished = 0;
    bob.onBundleChanged = () => { bobRepublished++; };
    const deviceId = bob.deviceId;
    await bob.rotateIdentity();
    assert.equal(bobRepublished, 1);
    assert.equal(bob.deviceId, deviceId);
    const rotated = bob.bundle();
    assert.notDeepEqual(rotated.identityKey, oldKey);
    assert.equal(await verifySignedPreKeySignature(rotated), true);
    assert.equal(await bob.hasSession(ALICE, alice.deviceId), false, "sessions dropped");

    await bob.startSession(ALICE, alice.deviceId, alice.bundle());
    const message = await bob.encrypt(text("new me"), to(alice));
    const forged = copy(message);
    flipBase64Byte(keyFor(forged, alice.deviceId), 12);
    assert.equal((await rejection(alice.decrypt(BOB, forged))).reason, "bad-mac");
    assert.deepEqual(alice.identityChanges(), [], "a failed decryption records nothing");
    assert.deepEqual(alice.knownIdentity(BOB, deviceId), oldKey);

    const got = await alice.decrypt(BOB, message);
    assert.equal(str(got.payload), "new me");
    assert.equal(got.identityChanged, true);
    assert.deepEqual(alice.identityChanges(), [{
      jid: BOB, deviceId, previous: Buffer.from(oldKey!).toString("base64"), current: Buffer.from(rotated.identityKey).toString("base64"),
    }]);
    assert.deepEqual(alice.knownIdentity(BOB, deviceId), rotated.identityKey);
    alice.clearIdentityChanges();
    assert.deepEqual(alice.identityChanges(), []);
    const next = await alice.decrypt(BOB, await bob.encrypt(text("still me"), to(alice)));
    assert.equal(next.identityChanged, false);
  });

  it("records an identity change seen when starting a session from a new bundle", async () => {
    const { alice, bob } = await established();
    const oldKey = Buffer.from(bob.bundle().identityKey).toString("base64");
    await bob.rotateIdentity();
    await alice.startSession(BOB, bob.deviceId, bob.bundle());
    assert.deepEqual(alice.identityChanges().map((c) => [c.jid, c.deviceId, c.previous]), [[BOB, bob.deviceId, oldKey]]);
  });

  it("rejects a counter jump over 2000 as too-far-future and keeps the session", async function () {
    this.timeout(60000);
    const { alice, bob } = await established();
    const skipped = [];
    for (let i = 0; i < 2002; i++) skipped.push(await alice.encrypt(text(`n${i}`), to(bob)));
    assert.equal((await rejection(bob.decrypt(ALICE, skipped[2001]!))).reason, "too-far-future");
    assert.equal(str((await bob.decrypt(ALICE, skipped[0]!)).payload), "n0");
  });
});

describe("OMEMO counters, session snapshots and the keepConsumedPreKeys fault", function () {
  this.timeout(60000);

  it("reports the Signal counter and ratchet key of PreKey and Whisper messages, as on the wire", async () => {
    const { alice, bob } = await pair();
    const p0 = await alice.encrypt(text("p0"), to(bob));
    const p1 = await alice.encrypt(text("p1"), to(bob));
    const got1 = await bob.decrypt(ALICE, p1);
    const got0 = await bob.decrypt(ALICE, p0);
    assert.deepEqual([got1.preKey, got1.counter, got0.counter], [true, 1, 0], "PreKey messages: the inner WhisperMessage's counter");
    assert.equal(got0.ratchetKey, got1.ratchetKey, "one sending chain");
    // The counter is the one encoded in the protobuf (field 2 of the inner WhisperMessage).
    const outer = protobufFields(Buffer.from(keyFor(p1, bob.deviceId).getText(), "base64").subarray(1));
    const inner = outer.find((f) => f.field === 4)!.value as Uint8Array;
    const fields = protobufFields(inner.subarray(1, inner.length - 8));
    assert.equal(fields.find((f) => f.field === 2)!.value, 1);
    assert.equal(Buffer.from(fields.find((f) => f.field === 1)!.value as Uint8Array).toString("base64"), got1.ratchetKey);

    await alice.decrypt(BOB, await bob.encrypt(text("reply"), to(alice)));
    const ws = [];
    for (let i = 0; i < 200; i++) ws.push(await alice.encrypt(text(`w${i}`), to(bob)));
    assert.equal(keyFor(ws[0]!, bob.deviceId).attrs.prekey, undefined);
    const last = await bob.decrypt(ALICE, ws[199]!);
    const first = await bob.decrypt(ALICE, ws[0]!);
    assert.deepEqual([first.preKey, first.counter, last.counter], [false, 0, 199], "counters above 127 take a two-byte varint");
    assert.notEqual(first.ratchetKey, got0.ratchetKey, "a new chain after the reply");
    assert.equal(first.ratchetKey, last.ratchetKey);
  });

  it("reports counter and ratchet key for an empty key-transport message too", async () => {
    const { alice, bob } = await established();
    await bob.decrypt(ALICE, await alice.encrypt(text("a"), to(bob)));
    const kt = await bob.decrypt(ALICE, await alice.encrypt(null, to(bob)));
    assert.equal(kt.payload, null);
    assert.equal(kt.counter, 1);
  });

  it("snapshots and restores a session: 2001 messages encrypted and never sent are rewound", async function () {
    this.timeout(120000);
    const { alice, bob } = await established();
    assert.equal(await alice.snapshotSession(BOB, 999), undefined, "no session, no snapshot");
    const snapshot = await alice.snapshotSession(BOB, bob.deviceId);
    assert.equal(typeof snapshot, "string");
    for (let i = 0; i < 2001; i++) await alice.encrypt(text(`unsent ${i}`), to(bob));
    const far = await alice.encrypt(text("far ahead"), to(bob));
    assert.equal((await rejection(bob.decrypt(ALICE, far))).reason, "too-far-future");
    await alice.restoreSession(BOB, bob.deviceId, snapshot!);
    const next = await bob.decrypt(ALICE, await alice.encrypt(text("next in order"), to(bob)));
    assert.equal(str(next.payload), "next in order");
    assert.equal(next.counter, 0, "the chain was rewound to before the unsent messages");
    await assert.rejects(alice.restoreSession(BOB, bob.deviceId, ""), TypeError);
  });

  it("deletes a session and lists the devices it holds sessions with", async () => {
    const alice = await device(ALICE);
    const bob1 = await device(BOB, 7);
    const bob2 = await device(BOB, 8);
    assert.deepEqual(alice.sessionDeviceIds(BOB), []);
    await alice.startSession(BOB, 8, bob2.bundle());
    await alice.startSession(BOB, 7, bob1.bundle());
    assert.deepEqual(alice.sessionDeviceIds(BOB), [7, 8]);
    assert.deepEqual(alice.sessionDeviceIds("carol@partner.example"), []);
    await alice.deleteSession(BOB, 7);
    assert.deepEqual(alice.sessionDeviceIds(BOB), [8]);
    assert.equal(await alice.hasSession(BOB, 7), false);
    await assert.rejects(alice.encrypt(text("x"), [{ jid: BOB, deviceId: 7 }]), /no OMEMO session/);
  });

  it("keepConsumedPreKeys: a consumed prekey leaves the bundle but a second key exchange with it still decrypts", async () => {
    const careless = await OmemoDevice.generate({ jid: BOB, preKeyCount: PRE_KEYS, keepConsumedPreKeys: true });
    const strict = await device(BOB);
    for (const bob of [careless, strict]) {
      const before = bob.bundle();
      const used = before.preKeys[0]!.id;
      const alice = await device(ALICE);
      await alice.startSession(BOB, bob.deviceId, before, { preKeyId: used });
      await bob.decrypt(ALICE, await alice.encrypt(text("first"), to(bob)));
      assert.ok(!bob.bundle().preKeys.some((k) => k.id === used), "gone from the bundle either way");
      assert.equal(bob.bundle().preKeys.length, PRE_KEYS);
      const carol = await device("carol@gatekeeper.example");
      await carol.startSession(BOB, bob.deviceId, before, { preKeyId: used });
      const reuse = carol.encrypt(text("reuse"), to(bob)).then((m) => bob.decrypt("carol@gatekeeper.example", m));
      if (bob === careless) assert.equal(str((await reuse).payload), "reuse");
      else assert.equal((await rejection(reuse)).reason, "bad-mac");
    }
    assert.equal(careless.bundle().preKeys.length, PRE_KEYS, "the reuse consumed nothing new");
  });
});

describe("OMEMO bundle and device list XML", function () {
  this.timeout(30000);

  it("round-trips a bundle through XML text", async () => {
    const bob = await device(BOB);
    const bundle = bob.bundle();
    const el = bundleToElement(bundle);
    assert.equal(el.attrs.xmlns, NS.omemo);
    assert.equal(el.getChild("signedPreKeyPublic")!.attrs.signedPreKeyId, String(bundle.signedPreKey.id));
    assert.equal(el.getChild("prekeys")!.getChildren("preKeyPublic").length, PRE_KEYS);
    const parsed = parseBundleElement(parseXml(el.toString()));
    assert.deepEqual(parsed.problems, []);
    assert.deepEqual(parsed.bundle, bundle);
  });

  it("reports every problem of a bad bundle and still returns it when usable", async () => {
    const bob = await device(BOB);
    const el = parseXml(bundleToElement(bob.bundle()).toString());
    const prekeys = el.getChild("prekeys")!.getChildren("preKeyPublic");
    prekeys[0]!.attrs.preKeyId = "0";
    prekeys[1]!.attrs.preKeyId = String(2 ** 31);
    prekeys[2]!.attrs.preKeyId = prekeys[3]!.attrs.preKeyId;
    prekeys[4]!.children = ["!!!"];
    prekeys[5]!.children = [Buffer.alloc(20, 5).toString("base64")];
    prekeys[6]!.children = [Buffer.from(prekeys[6]!.getText(), "base64").subarray(1).toString("base64")];
    const { bundle, problems } = parseBundleElement(el);
    assert.ok(bundle, "identity and signed prekey are fine: usable");
    assert.equal(problems.length, 6, problems.join("\n"));
    assert.match(problems[0]!, /preKeyId '0'.*1\.\.2147483647/);
    assert.match(problems[1]!, /preKeyId '2147483648'/);
    assert.match(problems[2]!, /duplicate preKeyId/);
    assert.match(problems[3]!, /not valid base64/);
    assert.match(problems[4]!, /20 bytes/);
    assert.match(problems[5]!, /32 bytes without the 0x05/);
    assert.equal(bundle.preKeys.length, PRE_KEYS - 5, "bad entries left out, the bare 32-byte key kept with its prefix restored");
    assert.deepEqual(bundle.preKeys.find((k) => k.id === Number(prekeys[6]!.attrs.preKeyId))!.publicKey, bob.bundle().preKeys[6]!.publicKey);
  });

  it("reports missing parts and refuses an unusable bundle", async () => {
    const bob = await device(BOB);
    const el = parseXml(bundleToElement(bob.bundle()).toString());
    el.remove("signedPreKeySignature");
    el.getChild("identityKey")!.children = [Buffer.alloc(33, 7).toString("base64")];
    el.remove("prekeys");
    const { bundle, problems } = parseBundleElement(el);
    assert.equal(bundle, undefined);
    assert.ok(problems.some((p) => /missing <signedPreKeySignature\/>/.test(p)), problems.join("\n"));
    assert.ok(problems.some((p) => /identityKey starts with 0x07/.test(p)), problems.join("\n"));
    assert.ok(problems.some((p) => /missing <prekeys\/>/.test(p)), problems.join("\n"));
    const wrongNs = parseBundleElement(xml("bundle", { xmlns: "urn:xmpp:omemo:2" }));
    assert.ok(wrongNs.problems.some((p) => /namespace is 'urn:xmpp:omemo:2'/.test(p)));
  });

  it("round-trips a device list and reports bad ids", () => {
    const el = deviceListElement([1, 42, MAX_KEY_ID]);
    assert.equal(el.toString(), `<list xmlns="${NS.omemo}"><device id="1"/><device id="42"/><device id="${MAX_KEY_ID}"/></list>`);
    assert.deepEqual(parseDeviceListElement(parseXml(el.toString())), { ids: [1, 42, MAX_KEY_ID], problems: [] });
    const bad = parseXml(`<list xmlns="${NS.omemo}"><device id="7"/><device id="7"/><device id="0"/><device id="x"/><device/><device id="8" label="phone"/></list>`);
    const parsed = parseDeviceListElement(bad);
    assert.deepEqual(parsed.ids, [7, 8]);
    assert.equal(parsed.problems.length, 4, parsed.problems.join("\n"));
    assert.match(parsed.problems[0]!, /7 is listed twice/);
    assert.match(parsed.problems[3]!, /missing/);
  });
});

describe("signed prekey signature", function () {
  this.timeout(30000);

  it("verifies a real bundle and fails after any flipped byte, including the Edwards sign bit", async () => {
    const bob = await device(BOB);
    const bundle = bob.bundle();
    assert.equal(await verifySignedPreKeySignature(bundle), true);
    const mutate = (f: (b: OmemoBundle) => void): OmemoBundle => {
      const b = bob.bundle();
      f(b);
      return b;
    };
    assert.equal(await verifySignedPreKeySignature(mutate((b) => { b.signedPreKey.signature[0]! ^= 0x01; })), false);
    assert.equal(await verifySignedPreKeySignature(mutate((b) => { b.signedPreKey.signature[63]! ^= 0x80; })), false, "sign bit is part of the signature");
    assert.equal(await verifySignedPreKeySignature(mutate((b) => { b.signedPreKey.publicKey[5]! ^= 0x01; })), false);
    const other = await device(ALICE);
    assert.equal(await verifySignedPreKeySignature(mutate((b) => { b.identityKey = other.bundle().identityKey; })), false);
    assert.equal(await verifySignedPreKeySignature(mutate((b) => { b.identityKey = b.identityKey.subarray(0, 20); })), false, "malformed key is invalid, not a throw");
  });
});
