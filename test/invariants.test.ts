// The run-wide invariants on single stanzas and documents, and their wiring into a case context.
import assert from "node:assert/strict";
import { CONTENT_INVARIANTS, INVARIANT_REQUIREMENTS, STANZA_INVARIANTS } from "../src/checks/invariants.ts";
import { loadRequirements } from "../src/checks/requirements.ts";
import { parseXml } from "../src/protocol/xml.ts";
import { CaseContext } from "../src/runner/context.ts";
import type { CaseDefinition } from "../src/cases/loader.ts";
import type { EndpointConfig } from "../src/config/config.ts";

function breaches(xmlText: string, fromPartnerUser = true): string[] {
  const stanza = parseXml(xmlText);
  return STANZA_INVARIANTS.filter((i) => i.inspect(stanza, { fromPartnerUser }) !== null).map((i) => i.requirement);
}

describe("run-wide invariants", () => {
  it("guard requirements that exist in the profile", () => {
    const ids = new Set(loadRequirements().map((r) => r.id));
    for (const id of INVARIANT_REQUIREMENTS) assert.ok(ids.has(id), id);
    assert.deepEqual([...INVARIANT_REQUIREMENTS].sort(), ["PRV-01", "PRV-03", "TRN-04", "UNS-11"]);
  });

  it("let ordinary partner traffic pass", () => {
    assert.deepEqual(breaches("<message from='p@d/r' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/><body>x</body></message>"), []);
    assert.deepEqual(breaches("<message from='p@d/r'><received xmlns='urn:xmpp:receipts' id='1'/></message>"), []);
    assert.deepEqual(breaches("<iq from='p@d' type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub'/></iq>"), []);
    // An error may echo the refused request; it starts nothing and reveals nothing.
    assert.deepEqual(breaches("<iq from='p@d' type='error'><jingle xmlns='urn:xmpp:jingle:1'/><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"), []);
  });

  it("catch profile data and presence from partner users (PRV-01), and only from them", () => {
    assert.deepEqual(breaches("<message from='p@d/r'><nick xmlns='http://jabber.org/protocol/nick'>P</nick></message>"), ["PRV-01"]);
    assert.deepEqual(breaches("<presence from='p@d/r'><x xmlns='vcard-temp:x:update'/></presence>"), ["PRV-01"]);
    assert.deepEqual(breaches("<iq from='p@d' type='result'><vCard xmlns='vcard-temp'><FN>P</FN></vCard></iq>"), ["PRV-01"]);
    assert.deepEqual(breaches("<message from='p@d'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:avatar:metadata'/></event></message>"), ["PRV-01"]);
    assert.deepEqual(breaches("<presence from='p@d/r' type='subscribe'/>"), ["PRV-01", "PRV-03"]);
    assert.deepEqual(breaches("<presence from='alice@d/r'/>", false), []);
  });

  it("catch group, call and MIX initiations from partner users (UNS-11)", () => {
    assert.deepEqual(breaches("<message from='p@d/r'><x xmlns='jabber:x:conference' jid='room@muc'/></message>"), ["UNS-11"]);
    assert.deepEqual(breaches("<message from='p@d/r'><x xmlns='http://jabber.org/protocol/muc#user'><invite/></x></message>"), ["UNS-11"]);
    assert.deepEqual(breaches("<message from='p@d/r'><proceed xmlns='urn:xmpp:jingle-message:0' id='c'/></message>"), ["UNS-11"]);
    assert.deepEqual(breaches("<iq from='p@d/r' type='set'><jingle xmlns='urn:xmpp:jingle:1' action='session-initiate'/></iq>"), ["UNS-11"]);
    assert.deepEqual(breaches("<message from='p@d/r' type='groupchat'><body>x</body></message>"), ["UNS-11"]);
  });

  it("catch a malformed error from anyone (TRN-04)", () => {
    assert.deepEqual(breaches("<message from='server' type='error'><error type='cancel'/></message>", false), ["TRN-04"]);
  });

  it("catch stickers, statuses and disappearing content from partner users (UNS-11)", () => {
    const [content] = CONTENT_INVARIANTS;
    assert.equal(content!.inspect({ v: 1, kind: "text", text: "hi" }), null);
    assert.match(content!.inspect({ v: 1, kind: "sticker" }) ?? "", /sticker/);
    assert.match(content!.inspect({ v: 1, kind: "status" }) ?? "", /status/);
    assert.match(content!.inspect({ v: 1, kind: "text", expiresAfterS: 60 }) ?? "", /expiresAfterS \(60\)/);
  });

  it("fail the case once per requirement, pointing at the first offending stanza, and only for partner users", () => {
    const config = { domain: "partner.test", reflector: "reflector@partner.test" } as EndpointConfig;
    const ctx = new CaseContext({ id: "privacy/x", requirements: ["PRV-01"] } as CaseDefinition, config);
    const fromPartner = parseXml("<presence from='reflector@partner.test/r' type='subscribed'/>");
    ctx.observeInbound(fromPartner, ctx.record("alice", "in", fromPartner.toString(), fromPartner));
    const again = parseXml("<presence from='reflector@partner.test/r'/>");
    ctx.observeInbound(again, ctx.record("alice", "in", again.toString(), again));
    const fromElsewhere = parseXml("<presence from='someone@elsewhere.test/r'/>");
    ctx.observeInbound(fromElsewhere, ctx.record("alice", "in", fromElsewhere.toString(), fromElsewhere));
    assert.equal(ctx.invariantFailures.length, 1);
    assert.equal(ctx.invariantFailures[0]!.requirement, "PRV-01");
    assert.deepEqual(ctx.invariantFailures[0]!.evidence, [1]);
    ctx.observeContent(parseXml("<message from='reflector@partner.test/r'/>"), { v: 1, kind: "sticker" }, 4);
    assert.deepEqual(ctx.invariantFailures.map((f) => f.requirement), ["PRV-01", "UNS-11"]);
  });
});
