// Incremental parser for one XMPP stream, used by the suite's client and the reference server.
// Wraps @xmpp/xml's parser so that nothing it throws escapes, and adds what an untrusted peer needs:
// a stanza size limit, refusal of DTDs and entity declarations (RFC 6120 §11.1), UTF-8 split safety.
import { EventEmitter } from "node:events";
import { StringDecoder } from "node:string_decoder";
import { Element, Parser } from "./xml.ts";

export type StreamErrorCondition = "not-well-formed" | "restricted-xml" | "policy-violation" | "bad-format";

export class StreamParseError extends Error {
  constructor(readonly condition: StreamErrorCondition, message: string) {
    super(message);
    this.name = "StreamParseError";
  }
}

export interface StreamParserOptions {
  /** Largest serialized size of one top-level stanza, in bytes of input. */
  maxStanzaBytes?: number;
}

export interface StreamParserEvents {
  open: [Element];
  stanza: [Element];
  close: [];
  error: [StreamParseError];
}

const RESTRICTED = /<!(DOCTYPE|ENTITY|ELEMENT|ATTLIST)/i;

export class StreamParser extends EventEmitter<StreamParserEvents> {
  readonly maxStanzaBytes: number;
  private parser: Parser;
  private decoder = new StringDecoder("utf8");
  private bytesInStanza = 0;
  private tail = "";
  private failed = false;

  constructor(options: StreamParserOptions = {}) {
    super();
    this.maxStanzaBytes = options.maxStanzaBytes ?? 10 * 1024 * 1024;
    this.parser = this.createParser();
  }

  private createParser(): Parser {
    const parser = new Parser();
    parser.on("start", (el: Element) => {
      this.bytesInStanza = 0;
      this.emit("open", el);
    });
    parser.on("element", (el: Element) => {
      this.bytesInStanza = 0;
      el.parent = null;
      this.emit("stanza", el);
    });
    parser.on("end", () => this.emit("close"));
    parser.on("error", (err: Error) => this.fail("not-well-formed", err.message));
    return parser;
  }

  /** Start a new stream on the same connection (after STARTTLS or SASL success). */
  restart(): void {
    this.parser.removeAllListeners();
    this.parser = this.createParser();
    this.tail = "";
    this.bytesInStanza = 0;
  }

  /** Stop parsing; later bytes are ignored instead of reaching a detached parser. */
  stop(): void {
    this.failed = true;
    this.parser.removeAllListeners();
  }

  private fail(condition: StreamErrorCondition, message: string): void {
    if (this.failed) return;
    this.stop();
    this.emit("error", new StreamParseError(condition, message));
  }

  write(chunk: Buffer | string): void {
    if (this.failed) return;
    const text = typeof chunk === "string" ? chunk : this.decoder.write(chunk);
    if (RESTRICTED.test(this.tail + text)) {
      this.fail("restricted-xml", "the stream carries a DTD or an entity declaration (RFC 6120 §11.1)");
      return;
    }
    this.tail = text.slice(-16);
    this.bytesInStanza += Buffer.byteLength(text);
    if (this.bytesInStanza > this.maxStanzaBytes) {
      this.fail("policy-violation", `a stanza exceeded the limit of ${this.maxStanzaBytes} bytes`);
      return;
    }
    try {
      this.parser.write(text);
    } catch (err) {
      this.fail("not-well-formed", (err as Error).message || String(err));
    }
  }
}
