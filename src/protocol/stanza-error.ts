import { Element, NS, STANZA_ERROR_CONDITIONS, STANZA_ERROR_TYPES, xml } from "./xml.ts";
import type { StanzaErrorCondition, StanzaErrorType } from "./xml.ts";

/** An application-specific condition such as <unsupported xmlns='urn:x-tpc:1:errors' feature='groups'/>. */
export interface AppCondition {
  name: string;
  xmlns: string;
  attrs: Record<string, string>;
}

/** A stanza error as RFC 6120 §8.3 defines it, read from or written to the wire. */
export interface StanzaErrorInfo {
  type: StanzaErrorType;
  condition: StanzaErrorCondition;
  app?: AppCondition;
  text?: string;
}

/** Build the <error/> child for an error stanza. */
export function errorElement(info: StanzaErrorInfo): Element {
  const children: Element[] = [xml(info.condition, { xmlns: NS.stanzas })];
  if (info.text) children.push(xml("text", { xmlns: NS.stanzas, "xml:lang": "en" }, info.text));
  if (info.app) children.push(xml(info.app.name, { xmlns: info.app.xmlns, ...info.app.attrs }));
  return xml("error", { type: info.type }, ...children);
}

/** A TPC/1 application condition in urn:x-tpc:1:errors. */
export function tpcCondition(name: string, attrs: Record<string, string> = {}): AppCondition {
  return { name, xmlns: NS.tpcErrors, attrs };
}

/**
 * Turn a received error stanza (or its <error/> child) into a bounce addressed back to the sender:
 * same name and id, from/to swapped, type='error'. The original payload is not echoed (TPC/1 §7).
 */
export function errorReply(stanza: Element, info: StanzaErrorInfo, from?: string): Element {
  const attrs: Record<string, string> = { type: "error" };
  if (stanza.attrs.id !== undefined) attrs.id = stanza.attrs.id;
  const replyFrom = from ?? stanza.attrs.to;
  if (replyFrom) attrs.from = replyFrom;
  if (stanza.attrs.from) attrs.to = stanza.attrs.from;
  return xml(stanza.name, attrs, errorElement(info));
}

export interface ParsedStanzaError {
  /** The error as read; fields absent when the stanza omitted them. */
  type?: string;
  condition?: string;
  app?: AppCondition;
  text?: string;
  /** Problems that make the error element not well-formed per RFC 6120 §8.3.2. */
  problems: string[];
}

/** Read the <error/> of an error stanza and say what is wrong with it, if anything. */
export function parseStanzaError(stanza: Element): ParsedStanzaError {
  const problems: string[] = [];
  const error = stanza.getChild("error");
  if (!error) return { problems: ["type='error' stanza has no <error/> child"] };
  const type = error.attrs.type as string | undefined;
  if (!type) problems.push("<error/> has no type attribute");
  else if (!(STANZA_ERROR_TYPES as readonly string[]).includes(type)) problems.push(`<error type='${type}'/> is not an RFC 6120 error type`);
  const defined = error.children.filter(
    (c): c is Element => typeof c !== "string" && c.attrs.xmlns === NS.stanzas && c.name !== "text",
  );
  if (defined.length === 0) problems.push("<error/> has no defined condition in urn:ietf:params:xml:ns:xmpp-stanzas");
  if (defined.length > 1) problems.push(`<error/> has ${defined.length} defined conditions; RFC 6120 allows exactly one`);
  const condition = defined[0]?.name;
  if (condition && !(STANZA_ERROR_CONDITIONS as readonly string[]).includes(condition)) {
    problems.push(`<${condition}/> is not an RFC 6120 defined condition`);
  }
  const appEl = error.children.find(
    (c): c is Element => typeof c !== "string" && c.attrs.xmlns !== undefined && c.attrs.xmlns !== NS.stanzas,
  );
  let app: AppCondition | undefined;
  if (appEl) {
    const { xmlns, ...attrs } = appEl.attrs as Record<string, string>;
    app = { name: appEl.name, xmlns: xmlns!, attrs };
  }
  const text = error.getChildText("text", NS.stanzas) ?? undefined;
  return { type, condition, app, text: text ?? undefined, problems };
}

/** One line for reports: "cancel/not-acceptable + encryption-required". */
export function describeStanzaError(e: ParsedStanzaError | StanzaErrorInfo): string {
  let out = `${e.type ?? "?"}/${e.condition ?? "?"}`;
  if (e.app) {
    const attrs = Object.entries(e.app.attrs).map(([k, v]) => ` ${k}='${v}'`).join("");
    out += ` + <${e.app.name}${attrs}/>`;
  }
  return out;
}

/** Thrown by request/response helpers when the peer answered with an error. */
export class StanzaError extends Error {
  readonly error: ParsedStanzaError;
  readonly stanza: Element;
  constructor(stanza: Element) {
    const parsed = parseStanzaError(stanza);
    super(`${stanza.name} error: ${describeStanzaError(parsed)}${parsed.text ? ` (${parsed.text})` : ""}`);
    this.name = "StanzaError";
    this.error = parsed;
    this.stanza = stanza;
  }
  static fromElement(stanza: Element): StanzaError {
    return new StanzaError(stanza);
  }
  get condition(): string | undefined {
    return this.error.condition;
  }
}
