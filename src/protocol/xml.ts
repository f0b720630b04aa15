// One import point for XML: @xmpp/xml builds and parses elements (ltx underneath).
import xmlModule, { Element, Parser } from "@xmpp/xml";

export { Element, Parser };
export const xml = xmlModule;

export const NS = {
  client: "jabber:client",
  stream: "http://etherx.jabber.org/streams",
  streams: "urn:ietf:params:xml:ns:xmpp-streams",
  tls: "urn:ietf:params:xml:ns:xmpp-tls",
  sasl: "urn:ietf:params:xml:ns:xmpp-sasl",
  bind: "urn:ietf:params:xml:ns:xmpp-bind",
  session: "urn:ietf:params:xml:ns:xmpp-session",
  stanzas: "urn:ietf:params:xml:ns:xmpp-stanzas",
  register: "jabber:iq:register",
  registerFeature: "http://jabber.org/features/iq-register",
  discoInfo: "http://jabber.org/protocol/disco#info",
  discoItems: "http://jabber.org/protocol/disco#items",
  pubsub: "http://jabber.org/protocol/pubsub",
  pubsubOwner: "http://jabber.org/protocol/pubsub#owner",
  pubsubErrors: "http://jabber.org/protocol/pubsub#errors",
  pubsubEvent: "http://jabber.org/protocol/pubsub#event",
  xdata: "jabber:x:data",
  commands: "http://jabber.org/protocol/commands",
  blocking: "urn:xmpp:blocking",
  blockingErrors: "urn:xmpp:blocking:errors",
  receipts: "urn:xmpp:receipts",
  eme: "urn:xmpp:eme:0",
  hints: "urn:xmpp:hints",
  upload: "urn:xmpp:http:upload:0",
  omemo: "eu.siacs.conversations.axolotl",
  omemoDeviceList: "eu.siacs.conversations.axolotl.devicelist",
  omemoBundles: "eu.siacs.conversations.axolotl.bundles",
  tpc: "urn:x-tpc:1",
  tpcContent: "urn:x-tpc:1:content",
  tpcErrors: "urn:x-tpc:1:errors",
  tpcAccount: "urn:x-tpc:1:account",
  tpcTest: "urn:x-tpc:1:test",
  muc: "http://jabber.org/protocol/muc",
  mucUser: "http://jabber.org/protocol/muc#user",
  conference: "jabber:x:conference",
  mix: "urn:xmpp:mix:core:1",
  jingle: "urn:xmpp:jingle:1",
  jingleMessage: "urn:xmpp:jingle-message:0",
  stickers: "urn:xmpp:stickers:0",
  ephemeral: "urn:xmpp:ephemeral:0",
} as const;

/** The fixed notice a TPC/1 message may carry as its only plaintext body. */
export const ENCRYPTED_NOTICE = "This message is end-to-end encrypted.";

/** RFC 6120 §8.3.3 defined stanza error conditions. */
export const STANZA_ERROR_CONDITIONS = [
  "bad-request", "conflict", "feature-not-implemented", "forbidden", "gone",
  "internal-server-error", "item-not-found", "jid-malformed", "not-acceptable",
  "not-allowed", "not-authorized", "policy-violation", "recipient-unavailable",
  "redirect", "registration-required", "remote-server-not-found",
  "remote-server-timeout", "resource-constraint", "service-unavailable",
  "subscription-required", "undefined-condition", "unexpected-request",
] as const;
export type StanzaErrorCondition = (typeof STANZA_ERROR_CONDITIONS)[number];
export const STANZA_ERROR_TYPES = ["auth", "cancel", "continue", "modify", "wait"] as const;
export type StanzaErrorType = (typeof STANZA_ERROR_TYPES)[number];

/** Parse a serialized element (tests, case files). Throws on malformed XML. */
export function parseXml(text: string): Element {
  let root: Element | null = null;
  let failure: Error | null = null;
  const parser = new Parser();
  parser.on("start", (el: Element) => { root = el; });
  parser.on("element", (el: Element) => { root?.append(el); });
  parser.on("end", () => undefined);
  parser.on("error", (err: Error) => { failure ??= err; });
  try {
    parser.write(text);
  } catch (err) {
    failure ??= err as Error;
  }
  if (failure) throw failure;
  if (!root) throw new Error("no XML element found");
  return root;
}

export function bareJid(jid: string): string {
  const slash = jid.indexOf("/");
  return slash === -1 ? jid : jid.slice(0, slash);
}

export function localPart(jid: string): string {
  const at = jid.indexOf("@");
  return at === -1 ? "" : jid.slice(0, at);
}

export function domainPart(jid: string): string {
  const bare = bareJid(jid);
  const at = bare.indexOf("@");
  return at === -1 ? bare : bare.slice(at + 1);
}

export function resourcePart(jid: string): string {
  const slash = jid.indexOf("/");
  return slash === -1 ? "" : jid.slice(slash + 1);
}
