// Incremental parser for one XMPP stream, used by the suite's client and the reference server.
// Wraps @xmpp/xml's parser so that nothing it throws escapes, and adds what an untrusted peer needs:
// strict UTF-8 and XML characters, refusal of bytes that are not XML at all, a stanza size limit,
// refusal of restricted XML (DTDs, entity declarations and references, comments, processing
// instructions: RFC 6120 §11.1), no character data between stanzas, and UTF-8 split safety.
//
// Events of one write() are emitted after the underlying parser has consumed the whole chunk, in
// order and still synchronously within write(): a listener that throws cannot corrupt the parser
// (or be mistaken for a parse error of the peer); the exception reaches the caller of write().
import { EventEmitter } from "node:events";
import { Element, Parser } from "./xml.ts";

export type StreamErrorCondition = "not-well-formed" | "restricted-xml" | "policy-violation" | "bad-format";

export class StreamParseError extends Error {
  constructor(readonly condition: StreamErrorCondition, message: string) {
    super(message);
    this.name = "StreamParseError";
  }
}

export interface StreamParserOptions {
  /**
   * Largest serialized size of one top-level stanza, in bytes of input. Counted per read: the limit
   * holds to within one chunk of input (a socket read, at most 64 KiB), so memory stays bounded.
   */
  maxStanzaBytes?: number;
}

export interface StreamParserEvents {
  open: [Element];
  stanza: [Element];
  close: [];
  error: [StreamParseError];
}

export const DEFAULT_MAX_STANZA_BYTES = 10 * 1024 * 1024;

/**
 * Restricted XML (RFC 6120 §11.1). A construct is judged only once enough characters follow it to
 * tell (`<![CDATA[` is allowed, `<?xml ` is the XML declaration), so a chunk boundary cannot cause a
 * false alarm; the tail of the previous chunk is checked again with the next one.
 */
const RESTRICTED: { pattern: RegExp; what: string }[] = [
  { pattern: /<!(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)/i, what: "a DTD or an entity declaration" },
  { pattern: /<!--/, what: "a comment" },
  { pattern: /<!(?=[\s\S]{7})(?!\[CDATA\[)/, what: "a markup declaration" },
  { pattern: /<\?(?=[\s\S]{4})(?!xml[\s?])/, what: "a processing instruction" },
  { pattern: /&(?!(?:amp|lt|gt|quot|apos);)[A-Za-z_:][\w.:-]*;/, what: "an entity reference other than the five predefined ones" },
];
const TAIL_CHARS = 64;

/** Characters XML 1.0 does not allow anywhere (C0 controls other than tab, CR, LF; U+FFFE, U+FFFF). */
const FORBIDDEN_CHAR = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/;

function preview(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 12), (b) => b.toString(16).padStart(2, "0")).join(" ") + (bytes.length > 12 ? " …" : "");
}

function quote(text: string, max = 40): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(cut);
}

/** @xmpp/xml's parser, with the stream level of XMPP: whitespace only outside stanzas, no stray end tags. */
class XmppLevelParser extends Parser {
  override onText(str: string): void {
    if (this.cursor === null || this.cursor === this.root) {
      if (/\S/.test(str)) this.emit("error", new Parser.XMLError(`character data ${quote(str.trim())} outside a stanza`));
      // Whitespace between stanzas (keepalives) is dropped, not appended to the stream element.
      return;
    }
    super.onText(str);
  }

  override onEndElement(name: string): void {
    if (this.cursor === null) {
      this.emit("error", new Parser.XMLError(`</${name}> closes no open element`));
      return;
    }
    if (name !== this.cursor.name) {
      this.emit("error", new Parser.XMLError(`</${name}> where </${this.cursor.name}> was expected`));
      return;
    }
    super.onEndElement(name);
  }
}

type QueuedEvent =
  | { type: "open"; element: Element; generation: number }
  | { type: "stanza"; element: Element; generation: number }
  | { type: "close"; generation: number }
  | { type: "error"; error: StreamParseError; generation: number };

export class StreamParser extends EventEmitter<StreamParserEvents> {
  readonly maxStanzaBytes: number;
  private parser: Parser;
  private decoder = new TextDecoder("utf-8", { fatal: true });
  private bytesInStanza = 0;
  private tail = "";
  /** Whether the first non-whitespace character of this stream has been seen (it must be `<`). */
  private started = false;
  /**
   * The start of a stream up to the end of its XML declaration, held back until complete: ltx finds
   * the end of a processing instruction only within one chunk, so a declaration that arrives byte by
   * byte would stall it forever. The declaration is checked and removed here.
   */
  private prolog: string | null = "";
  /** No more input is parsed (a parse error, or stop()). */
  private halted = false;
  /** stop() was called: queued events are dropped too. */
  private stopped = false;
  private generation = 0;
  private completedInWrite = false;
  private readonly queue: QueuedEvent[] = [];

  constructor(options: StreamParserOptions = {}) {
    super();
    this.maxStanzaBytes = options.maxStanzaBytes ?? DEFAULT_MAX_STANZA_BYTES;
    this.parser = this.createParser();
  }

  private createParser(): Parser {
    const parser = new XmppLevelParser();
    const generation = this.generation;
    parser.on("start", (el: Element) => {
      this.completedInWrite = true;
      this.queue.push({ type: "open", element: el, generation });
    });
    parser.on("element", (el: Element) => {
      this.completedInWrite = true;
      el.parent = null;
      this.queue.push({ type: "stanza", element: el, generation });
    });
    parser.on("end", () => this.queue.push({ type: "close", generation }));
    parser.on("error", (err: Error) => this.fail("not-well-formed", err.message || String(err)));
    return parser;
  }

  /** Start a new stream on the same connection (after STARTTLS or SASL success). */
  restart(): void {
    this.parser.removeAllListeners();
    this.parser.on("error", () => undefined);
    this.generation++;
    this.parser = this.createParser();
    this.decoder = new TextDecoder("utf-8", { fatal: true });
    this.tail = "";
    this.bytesInStanza = 0;
    this.started = false;
    this.prolog = "";
  }

  /** Stop parsing; later bytes are ignored instead of reaching a detached parser. */
  stop(): void {
    this.halted = true;
    this.stopped = true;
    this.queue.length = 0;
    this.release();
  }

  /** Drop the underlying parser and the partial stanza it holds (memory of an oversized stanza). */
  private release(): void {
    this.parser.removeAllListeners();
    // The old parser may still be inside write(): a second error in the same chunk must not throw.
    this.parser.on("error", () => undefined);
    this.parser = new XmppLevelParser();
  }

  private fail(condition: StreamErrorCondition, message: string): void {
    if (this.halted) return;
    this.halted = true;
    this.release();
    this.queue.push({ type: "error", error: new StreamParseError(condition, message), generation: this.generation });
  }

  write(chunk: Buffer | Uint8Array | string): void {
    if (this.halted) return;
    try {
      this.consume(chunk);
    } finally {
      this.flush();
    }
  }

  private consume(chunk: Buffer | Uint8Array | string): void {
    let text: string;
    let size: number;
    if (typeof chunk === "string") {
      text = chunk;
      size = Buffer.byteLength(chunk);
    } else {
      size = chunk.length;
      try {
        text = this.decoder.decode(chunk, { stream: true });
      } catch {
        this.fail("not-well-formed", this.started ? `the stream is not UTF-8 (bytes ${preview(chunk)})` : `the stream does not start with XML: ${describeNonXml("", chunk)}`);
        return;
      }
    }
    if (!this.started) {
      const first = /\S/.exec(text);
      if (first) {
        this.started = true;
        if (text[first.index] !== "<") {
          const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
          this.fail("not-well-formed", `the stream does not start with XML: ${describeNonXml(text.slice(first.index), bytes)}`);
          return;
        }
      }
    }
    const forbidden = FORBIDDEN_CHAR.exec(text);
    if (forbidden) {
      this.fail("not-well-formed", `the stream carries the character U+${forbidden[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}, which XML does not allow`);
      return;
    }
    const window = this.tail + text;
    for (const { pattern, what } of RESTRICTED) {
      const match = pattern.exec(window);
      if (match) {
        this.fail("restricted-xml", `the stream carries ${what} (${quote(window.slice(match.index, match.index + 24), 24)}), which XMPP forbids (RFC 6120 §11.1)`);
        return;
      }
    }
    this.tail = window.slice(-TAIL_CHARS);
    this.completedInWrite = false;
    const input = this.afterDeclaration(text);
    if (input === undefined) return;
    try {
      if (input) this.parser.write(input);
    } catch (err) {
      this.fail("not-well-formed", (err as Error).message || String(err));
      return;
    }
    // Bytes since the last complete top-level element (or stream header): a chunk that completed
    // one starts the count again, so many small stanzas in one read are never mistaken for a big one.
    this.bytesInStanza = this.completedInWrite ? 0 : this.bytesInStanza + size;
    if (this.bytesInStanza > this.maxStanzaBytes) {
      this.fail("policy-violation", `a stanza exceeded the limit of ${this.maxStanzaBytes} bytes`);
    }
  }

  /** The text to parse once the XML declaration (if any) is complete and removed; undefined: not yet. */
  private afterDeclaration(text: string): string | undefined {
    if (this.prolog === null) return text;
    const prolog = this.prolog + text;
    const start = prolog.search(/\S/);
    if (start === -1 || prolog.length - start < 2) {
      this.prolog = prolog;
      return undefined;
    }
    if (!prolog.startsWith("<?", start)) {
      this.prolog = null;
      return prolog;
    }
    const end = prolog.indexOf("?>", start);
    if (end === -1) {
      if (prolog.length > 1024) this.fail("not-well-formed", "the XML declaration does not end");
      else this.prolog = prolog;
      return undefined;
    }
    this.prolog = null;
    return prolog.slice(end + 2);
  }

  private flush(): void {
    while (this.queue.length > 0 && !this.stopped) {
      const event = this.queue.shift()!;
      if (event.generation !== this.generation) continue;
      if (event.type === "open") this.emit("open", event.element);
      else if (event.type === "stanza") this.emit("stanza", event.element);
      else if (event.type === "close") this.emit("close");
      else this.emit("error", event.error);
    }
  }
}

/** Plain words for the first bytes of a stream that is not XML at all. */
function describeNonXml(text: string, bytes: Uint8Array): string {
  const start = bytes.findIndex((b) => b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d);
  const head = start === -1 ? bytes : bytes.subarray(start);
  if (head[0] === 0x15 || head[0] === 0x16) return `it looks like TLS (bytes ${preview(head)})`;
  if (/^HTTP\/\d/.test(text)) return `it looks like HTTP (${quote(text.split(/\r?\n/)[0]!)})`;
  if (/^[\x20-\x7e]/.test(text)) return `${quote(text.split(/\r?\n/)[0]!)}`;
  return `bytes ${preview(head)}`;
}
