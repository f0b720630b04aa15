// Run-wide invariants: rules every stanza the endpoint sends must keep, whatever the case is about.
// The runner observes every inbound stanza (and every decrypted content document) of every case
// against them; a breach fails the case under the invariant's own requirement, with the offending
// stanza as evidence. Adding an invariant is adding an entry here.
import { parseStanzaError } from "../protocol/stanza-error.ts";
import { NS } from "../protocol/xml.ts";
import type { Element } from "../protocol/xml.ts";

/** Who sent a stanza, as far as the invariants care. */
export interface StanzaOrigin {
  /** A partner user (an account of the endpoint's domain that is not one of the case's actors). */
  fromPartnerUser: boolean;
}

export interface StanzaInvariant {
  requirement: string;
  /** What must hold, in the words of the report's "expected". */
  expected: string;
  /** What is wrong with this stanza, or null when it keeps the rule. */
  inspect(stanza: Element, origin: StanzaOrigin): string | null;
}

export interface ContentInvariant {
  requirement: string;
  expected: string;
  /** What is wrong with a content document a partner user sent, or null. */
  inspect(doc: Record<string, unknown>): string | null;
}

const NICK_NS = "http://jabber.org/protocol/nick";
const VCARD_UPDATE_NS = "vcard-temp:x:update";
const PROFILE_NODES = new Set(["urn:xmpp:avatar:metadata", "urn:xmpp:avatar:data", NICK_NS, "urn:xmpp:vcard4"]);
const PUBSUB_EVENT_NS = "http://jabber.org/protocol/pubsub#event";

/** The profile data a stanza carries (TPC/1 §10: nick, vCard, avatar), as a short description. */
function profileData(stanza: Element): string | null {
  if (stanza.getChild("nick", NICK_NS)) return `a nick <nick xmlns='${NICK_NS}'/> (XEP-0172)`;
  if (stanza.getChild("x", VCARD_UPDATE_NS)) return "a vCard-based avatar update (XEP-0153)";
  if (stanza.getChild("vCard", "vcard-temp")) return "a vCard (XEP-0054)";
  const items = stanza.getChild("event", PUBSUB_EVENT_NS)?.getChild("items");
  const node = items?.attrs.node;
  if (typeof node === "string" && PROFILE_NODES.has(node)) return `a PEP notification of ${node}`;
  return null;
}

/** Elements that start or offer an unsupported feature (TPC/1 §7). */
function forbiddenFeature(stanza: Element): string | null {
  if (stanza.name === "message") {
    if (stanza.attrs.type === "groupchat") return "a groupchat message";
    if (stanza.getChild("x", NS.conference)) return "a direct MUC invitation (XEP-0249)";
    if (stanza.getChild("x", NS.mucUser)?.getChild("invite")) return "a mediated MUC invitation (XEP-0045)";
    const jmi = stanza.getChildElements().find((c) => c.attrs.xmlns === NS.jingleMessage);
    if (jmi) return `Jingle Message Initiation <${jmi.name}/> (XEP-0353)`;
  }
  if (stanza.name === "iq" && stanza.getChild("jingle", NS.jingle)) return "a Jingle request (XEP-0166)";
  if (stanza.getChildElements().some((c) => typeof c.attrs.xmlns === "string" && c.attrs.xmlns.startsWith("urn:xmpp:mix:"))) return "a MIX element (XEP-0369)";
  return null;
}

export const STANZA_INVARIANTS: readonly StanzaInvariant[] = [
  {
    requirement: "TRN-04",
    expected: "an error stanza with a valid type and exactly one defined condition (RFC 6120 §8.3.2)",
    inspect(stanza) {
      if (stanza.attrs.type !== "error") return null;
      const { problems } = parseStanzaError(stanza);
      return problems.length ? problems.join("; ") : null;
    },
  },
  {
    requirement: "PRV-01",
    expected: "nothing from a partner user carries a nick, vCard, avatar or presence (TPC/1 §10)",
    inspect(stanza, { fromPartnerUser }) {
      if (!fromPartnerUser || stanza.attrs.type === "error") return null;
      if (stanza.name === "presence") return `presence${stanza.attrs.type ? ` type='${String(stanza.attrs.type)}'` : ""} from a partner user`;
      const data = profileData(stanza);
      return data ? `${stanza.name} from a partner user carrying ${data}` : null;
    },
  },
  {
    requirement: "PRV-03",
    expected: "no presence subscription request from a partner user (TPC/1 §10)",
    inspect(stanza, { fromPartnerUser }) {
      return fromPartnerUser && stanza.name === "presence" && stanza.attrs.type === "subscribe" ? "presence type='subscribe' from a partner user" : null;
    },
  },
  {
    requirement: "UNS-11",
    expected: "no group invitation, groupchat, MIX, Jingle or Jingle Message from a partner user (TPC/1 §7)",
    inspect(stanza, { fromPartnerUser }) {
      // Error replies may echo the request they refuse; they start nothing.
      if (!fromPartnerUser || stanza.attrs.type === "error" || stanza.attrs.type === "result") return null;
      const feature = forbiddenFeature(stanza);
      return feature ? `${feature} from a partner user` : null;
    },
  },
];

export const CONTENT_INVARIANTS: readonly ContentInvariant[] = [
  {
    requirement: "UNS-11",
    expected: "no sticker, status or disappearing content from a partner user (TPC/1 §5, §7)",
    inspect(doc) {
      if (doc.kind === "sticker" || doc.kind === "status") return `a content document of kind ${String(doc.kind)}`;
      if ("expiresAfterS" in doc) return `a content document with expiresAfterS (${String(doc.expiresAfterS)})`;
      return null;
    },
  },
];

/** Every requirement an invariant guards, for reports and docs. */
export const INVARIANT_REQUIREMENTS: readonly string[] = [...new Set([...STANZA_INVARIANTS, ...CONTENT_INVARIANTS].map((i) => i.requirement))];
