// What the parts of the reference server share: accounts, bound sessions, options, helpers.
import type { Account, AccountStore } from "./accounts.ts";
import { errorReply } from "../../protocol/stanza-error.ts";
import type { StanzaErrorInfo } from "../../protocol/stanza-error.ts";
import { Element, NS, bareJid, xml } from "../../protocol/xml.ts";
import { hasFault } from "./faults.ts";

export interface NumberClassification {
  eligible: boolean;
  region: string;
  e164: string | null;
  reason: string;
}

export type ClassifyNumber = (phone: string) => NumberClassification;

/** A stream that has bound a resource: what routing needs to know about it. */
export interface BoundSession {
  /** Full JID. */
  readonly jid: string;
  readonly bare: string;
  readonly resource: string;
  readonly account: Account;
  /** True after initial presence, false after unavailable presence. */
  readonly available: boolean;
  /** Write one element to this client (logged). */
  send(element: Element): void;
}

/**
 * A service on its own JID in the domain (e.g. a future XEP-0363 upload service). Listed by
 * disco#items on the domain; IQ get/set addressed to its JID are handed to it.
 */
export interface ServerComponent {
  readonly jid: string;
  readonly name?: string;
  handleIq(iq: Element, from: BoundSession): Element | Promise<Element>;
}

export interface ServerContext {
  readonly domain: string;
  readonly accounts: AccountStore;
  readonly sessions: SessionRegistry;
  readonly faults: ReadonlySet<string>;
  readonly scramIterations: number;
  readonly components: ReadonlyMap<string, ServerComponent>;
  /** The injected eligibility classifier, made total: a throw or a missing E.164 becomes region ZZ. */
  classify(phone: string): NumberClassification;
  log(line: string): void;
  nextId(prefix: string): string;
}

/** Bound sessions by bare JID, then resource (insertion order = binding order). */
export class SessionRegistry {
  private readonly byBare = new Map<string, Map<string, BoundSession>>();

  get(fullJid: string): BoundSession | undefined {
    const slash = fullJid.indexOf("/");
    if (slash === -1) return undefined;
    return this.byBare.get(fullJid.slice(0, slash))?.get(fullJid.slice(slash + 1));
  }

  of(bare: string): BoundSession[] {
    return [...(this.byBare.get(bare)?.values() ?? [])];
  }

  available(bare: string): BoundSession[] {
    return this.of(bare).filter((s) => s.available);
  }

  add(session: BoundSession): void {
    let resources = this.byBare.get(session.bare);
    if (!resources) this.byBare.set(session.bare, (resources = new Map()));
    resources.set(session.resource, session);
  }

  remove(session: BoundSession): void {
    const resources = this.byBare.get(session.bare);
    if (resources?.get(session.resource) !== session) return;
    resources.delete(session.resource);
    if (resources.size === 0) this.byBare.delete(session.bare);
  }
}

/** A JID split into its parts, local and domain lower-cased (enough of RFC 7622 for a test server). */
export interface Jid {
  local: string;
  domain: string;
  resource: string;
  bare: string;
  full: string;
}

export function parseJid(text: string): Jid | null {
  const slash = text.indexOf("/");
  const bareText = slash === -1 ? text : text.slice(0, slash);
  const resource = slash === -1 ? "" : text.slice(slash + 1);
  if (slash !== -1 && resource === "") return null;
  const at = bareText.indexOf("@");
  const local = at === -1 ? "" : bareText.slice(0, at).toLowerCase();
  const domain = (at === -1 ? bareText : bareText.slice(at + 1)).toLowerCase();
  if (at !== -1 && local === "") return null;
  if (domain === "" || domain.includes("@") || /[\s<>"'&]/.test(local + domain)) return null;
  const bare = local ? `${local}@${domain}` : domain;
  return { local, domain, resource, bare, full: resource ? `${bare}/${resource}` : bare };
}

export function normaliseJid(text: string): string | null {
  return parseJid(text)?.full ?? null;
}

export { bareJid };

/** An IQ result answering `iq`, from its `to` (absent when the IQ had none). */
export function iqResult(iq: Element, ...children: Element[]): Element {
  const attrs: Record<string, string> = { type: "result", id: String(iq.attrs.id ?? "") };
  if (iq.attrs.to) attrs.from = iq.attrs.to;
  if (iq.attrs.from) attrs.to = iq.attrs.from;
  return xml("iq", attrs, ...children);
}

/**
 * Every error stanza the server itself generates is built here: a bounce of `stanza` (same name and
 * id, from/to swapped, payload not echoed). Under the fault `malformed-error` the <error/> carries a
 * second defined condition right after the real one.
 */
export function serverError(ctx: { readonly faults: ReadonlySet<string> }, stanza: Element, info: StanzaErrorInfo, from?: string): Element {
  const reply = errorReply(stanza, info, from);
  if (hasFault(ctx, "malformed-error")) {
    const error = reply.getChild("error")!;
    const second = xml("undefined-condition", { xmlns: NS.stanzas });
    second.parent = error;
    error.children.splice(1, 0, second);
  }
  return reply;
}

/** The single payload child of an IQ get/set, or null when it has none or several. */
export function iqPayload(iq: Element): Element | null {
  const children = iq.getChildElements();
  return children.length === 1 ? children[0]! : null;
}

export function cloneElement(element: Element): Element {
  const copy = new Element(element.name, { ...element.attrs });
  for (const child of element.children) copy.append(typeof child === "string" ? child : cloneElement(child));
  return copy;
}
