// The upload-probe step against what the endpoint advertises: a hostile max-file-size (2 GiB, 16
// digits) is probed up to the suite's cap, streamed both ways, and the check says what was tried;
// the endpoint's TLS overrides (tls.insecure) reach the HTTP transfers. The XMPP side is a fake
// IqSender (disco and slots, inline); the HTTP side a small HTTPS store on loopback that spools to a
// temporary file, so the only copies of a probe in this process would be the suite's own.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { Transform } from "node:stream";
import type { CaseDefinition } from "../src/cases/loader.ts";
import type { EndpointConfig } from "../src/config/config.ts";
import { generateCertificate } from "../src/partner/tls.ts";
import type { XmppConnection } from "../src/protocol/connection.ts";
import type { OmemoDevice } from "../src/protocol/omemo.ts";
import { HttpTransferError } from "../src/protocol/upload.ts";
import { NS, xml } from "../src/protocol/xml.ts";
import type { Element } from "../src/protocol/xml.ts";
import { Actor, CaseContext, CheckFailed } from "../src/runner/context.ts";
import { MAX_PROBE_BYTES, MEDIA_STEP_HANDLERS, probeBody } from "../src/runner/media-steps.ts";

const DOMAIN = "partner.test";
const TWO_GIB = 2 * 1024 * 1024 * 1024;

interface ProbeStore {
  origin: string;
  /** Bytes each PUT delivered, by path. */
  received: Map<string, number>;
  /** sha256 of each PUT's bytes, by path. */
  digests: Map<string, string>;
  stop(): Promise<void>;
}

/** An HTTPS store: PUT spools to a file (201), GET streams it back (200; `tamper` flips its first byte). */
async function startProbeStore(tls: { keyPem: string; certPem: string }, options: { tamper?: boolean } = {}): Promise<ProbeStore> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "chatconform-probe-"));
  const received = new Map<string, number>();
  const digests = new Map<string, string>();
  const fileOf = (url: string) => path.join(dir, createHash("sha256").update(url).digest("hex"));
  const server = https.createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    const url = req.url ?? "/";
    if (req.method === "PUT") {
      let bytes = 0;
      const hash = createHash("sha256");
      req.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      req.pipe(createWriteStream(fileOf(url))).on("finish", () => {
        received.set(url, bytes);
        digests.set(url, hash.digest("hex"));
        res.writeHead(201).end();
      });
      return;
    }
    const size = received.get(url);
    if (req.method !== "GET" || size === undefined) return void res.writeHead(req.method === "GET" ? 404 : 405).end();
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": String(size) });
    let first = true;
    const tamper = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        if (first && options.tamper && chunk.length > 0) chunk = Buffer.concat([Buffer.from([chunk[0]! ^ 0x01]), chunk.subarray(1)]);
        first = false;
        callback(null, chunk);
      },
    });
    createReadStream(fileOf(url)).pipe(tamper).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    digests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The XMPP side of an upload service: disco#items, disco#info with `maxFileSize` as sent, and slots into `origin`. */
function fakeUploadService(maxFileSize: string, origin: string) {
  const slotSizes: number[] = [];
  let slots = 0;
  const conn = {
    async iq(element: Element): Promise<Element> {
      const to = String(element.attrs.to);
      const child = element.getChildElements()[0]!;
      const reply = (...children: Element[]) => xml("iq", { type: "result", from: to, id: "x" }, ...children);
      if (child.attrs.xmlns === NS.discoItems) return reply(xml("query", { xmlns: NS.discoItems }, xml("item", { jid: `upload.${DOMAIN}` })));
      if (child.attrs.xmlns === NS.discoInfo) {
        return reply(xml("query", { xmlns: NS.discoInfo },
          xml("identity", { category: "store", type: "file" }),
          xml("feature", { var: NS.upload }),
          xml("x", { xmlns: NS.xdata, type: "result" },
            xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, NS.upload)),
            xml("field", { var: "max-file-size" }, xml("value", {}, maxFileSize)))));
      }
      if (child.name === "request" && child.attrs.xmlns === NS.upload) {
        slotSizes.push(Number(child.attrs.size));
        const url = `${origin}/upload/${++slots}/${encodeURIComponent(String(child.attrs.filename))}`;
        return reply(xml("slot", { xmlns: NS.upload }, xml("put", { url }), xml("get", { url })));
      }
      throw new Error(`unexpected IQ ${element.toString()}`);
    },
  };
  return { conn, slotSizes };
}

function caseContext(conn: unknown, tls: EndpointConfig["tls"]): CaseContext {
  const config: EndpointConfig = {
    service: "xmpp://127.0.0.1:5222",
    domain: DOMAIN,
    tls,
    accounts: { mode: "register", prefix: "tpc-test-", static: [], ineligible: [] },
    hooks: [],
    policy: "eea",
    timeouts: { connect: 5000, stream: 5000, tls: 5000, sasl: 5000, bind: 5000, iq: 5000, stanza: 5000, http: 30_000 },
    maxStanzaBytes: 1024 * 1024,
    localTestEndpoint: true,
  };
  const caseDef = { id: "media/upload-limit", actors: { alice: {} }, steps: [] } as unknown as CaseDefinition;
  const ctx = new CaseContext(caseDef, config);
  const alice = new Actor("alice", {}, "+33612345678", { username: "tpc-test-alice", password: "x" }, DOMAIN);
  alice.devices[0]!.conn = conn as XmppConnection;
  alice.devices[0]!.omemo = {} as OmemoDevice;
  ctx.actors.set("alice", alice);
  return ctx;
}

const probe = (ctx: CaseContext, check: string) => MEDIA_STEP_HANDLERS["upload-probe"]!(ctx, { actor: "alice", check, requirement: "MED-01" });

describe("upload-probe limits and TLS (fake service, local HTTPS store)", function () {
  this.timeout(60_000);
  let cert: { keyPem: string; certPem: string };
  let store: ProbeStore;
  before(async () => {
    cert = await generateCertificate(DOMAIN);
    store = await startProbeStore(cert);
  });
  after(() => store?.stop());

  it("probes an advertised 2 GiB limit only up to the cap, streamed, and says so in the check", async () => {
    const { conn, slotSizes } = fakeUploadService(String(TWO_GIB), store.origin);
    const ctx = caseContext(conn, { ca: cert.certPem });
    await probe(ctx, "limit");
    assert.deepEqual(slotSizes, [MAX_PROBE_BYTES], "the slot asked for is the cap, not the advertised 2 GiB");
    assert.deepEqual([...store.received.values()], [MAX_PROBE_BYTES], "the store received the cap, not 2 GiB");
    assert.equal(ctx.checks.length, 2);
    assert.ok(ctx.checks.every((c) => c.ok), JSON.stringify(ctx.checks));
    const [put, get] = ctx.checks;
    assert.match(put!.expected, new RegExp(`^PUT of ${MAX_PROBE_BYTES} bytes accepted \\(the probe's cap; max-file-size ${TWO_GIB} is advertised, uploads above ${MAX_PROBE_BYTES} bytes were not tried\\)$`));
    assert.equal(get!.expected, `GET returns exactly the ${MAX_PROBE_BYTES} bytes uploaded`);
    assert.match(get!.actual, new RegExp(`^${MAX_PROBE_BYTES} bytes, identical \\(\\d+ ms for both\\); ${MAX_PROBE_BYTES} of the advertised ${TWO_GIB} bytes probed$`));
  });

  it("caps a 16-digit max-file-size the same way", async () => {
    const { conn, slotSizes } = fakeUploadService("9000000000000000", store.origin);
    const ctx = caseContext(conn, { ca: cert.certPem });
    await probe(ctx, "limit");
    assert.deepEqual(slotSizes, [MAX_PROBE_BYTES]);
    assert.match(ctx.checks[1]!.actual, / of the advertised 9000000000000000 bytes probed$/);
  });

  it("probes a limit below the cap exactly, and says nothing of a cap", async () => {
    const limit = 1024 * 1024 + 3;
    const { conn, slotSizes } = fakeUploadService(String(limit), store.origin);
    const ctx = caseContext(conn, { ca: cert.certPem });
    await probe(ctx, "limit");
    assert.deepEqual(slotSizes, [limit]);
    assert.ok([...store.received.values()].includes(limit));
    assert.deepEqual(ctx.checks.map((c) => [c.ok, c.expected]), [[true, `PUT of ${limit} bytes accepted`], [true, `GET returns exactly the ${limit} bytes uploaded`]]);
    assert.doesNotMatch(ctx.checks[1]!.actual, /advertised/);
  });

  it("fails when the store returns other bytes of the same length", async () => {
    const tampering = await startProbeStore(cert, { tamper: true });
    try {
      const { conn } = fakeUploadService(String(256 * 1024), tampering.origin);
      const ctx = caseContext(conn, { ca: cert.certPem });
      await assert.rejects(probe(ctx, "limit"), (err: unknown) => err instanceof CheckFailed && /^262144 bytes, different \(sha256 [0-9a-f]{64}, uploaded [0-9a-f]{64}\)/.test(err.check.actual));
    } finally {
      await tampering.stop();
    }
  });

  it("probeBody makes its bytes as they are taken, every block different, and hashes all of them", () => {
    const size = 200_000;
    const body = probeBody(size);
    const made: Uint8Array[] = [];
    for (const chunk of body.chunks) {
      made.push(chunk);
      if (made.length === 2) break; // a server that answered early: the rest was never taken
    }
    assert.ok(made.every((c) => c.length <= 64 * 1024));
    const digest = body.sha256();
    assert.equal(body.sha256(), digest, "stable");
    assert.deepEqual([...body.chunks], [], "made once");
    const other = probeBody(size);
    const all = Buffer.concat([...other.chunks]);
    assert.equal(all.length, size);
    assert.equal(createHash("sha256").update(all).digest("hex"), other.sha256());
    assert.notDeepEqual(all.subarray(0, 16), all.subarray(16, 32));
    assert.notEqual(other.sha256(), digest, "a fresh key each probe");
  });

  describe("tls.insecure", () => {
    let other: ProbeStore;
    before(async () => {
      // A certificate the configured CA (partner.test's) did not sign.
      other = await startProbeStore(await generateCertificate("other.test"));
    });
    after(() => other?.stop());

    it("an untrusted certificate fails the transfer with the TLS error without tls.insecure", async () => {
      const { conn } = fakeUploadService(String(4096), other.origin);
      const ctx = caseContext(conn, { ca: cert.certPem });
      await assert.rejects(probe(ctx, "roundtrip"), (err: unknown) => err instanceof HttpTransferError && err.kind === "tls" && /^TLS with https:\/\/127\.0\.0\.1:\d+ failed: .* \(DEPTH_ZERO_SELF_SIGNED_CERT\)$/.test(err.message));
      assert.equal(other.received.size, 0);
    });

    it("with tls.insecure the same transfers go through and the checks are the same", async () => {
      const { conn } = fakeUploadService(String(4096), other.origin);
      const ctx = caseContext(conn, { ca: cert.certPem, insecure: true });
      await probe(ctx, "roundtrip");
      assert.deepEqual(ctx.checks.map((c) => [c.ok, c.expected]), [[true, "PUT of 4096 bytes accepted"], [true, "GET returns exactly the 4096 bytes uploaded"]]);
      assert.deepEqual([...other.received.values()], [4096]);
    });
  });
});
