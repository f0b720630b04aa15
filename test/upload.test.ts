// XEP-0363 upload: the reference partner's upload component and HTTPS store (src/partner/upload.ts),
// driven by the suite's client helpers (src/protocol/upload.ts) over a real XMPP stream and real
// HTTPS on loopback, TLS verified against the partner's certificate. No sleeps: every wait is a
// request's answer, with the helpers' deadlines as backstops.
import assert from "node:assert/strict";
import { createHash, randomBytes, X509Certificate } from "node:crypto";
import tls from "node:tls";
import { startReferencePartner } from "../src/partner/index.ts";
import { startReferenceServer } from "../src/partner/server/index.ts";
import type { ReferenceServer } from "../src/partner/server/index.ts";
import { generateCertificate } from "../src/partner/tls.ts";
import { DEFAULT_MAX_FILE_SIZE, UPLOAD_FAULTS, startUploadService } from "../src/partner/upload.ts";
import type { UploadService } from "../src/partner/upload.ts";
import { XmppConnection } from "../src/protocol/connection.ts";
import { encryptMedia } from "../src/protocol/media-crypto.ts";
import { StanzaError } from "../src/protocol/stanza-error.ts";
import { HttpTransferError, discoverUploadService, fileTooLarge, httpGet, httpGetDigest, httpPut, requestSlot } from "../src/protocol/upload.ts";
import { NS, xml } from "../src/protocol/xml.ts";

const SIXTEEN_MIB = 16 * 1024 * 1024;
const classifyNumber = (phone: string) => ({ eligible: true, region: "FR", e164: phone, reason: "EEA" });

interface Stack {
  server: ReferenceServer;
  upload: UploadService;
  conn: XmppConnection;
  ca: string;
  stop(): Promise<void>;
}

let users = 0;

/** The reference server with the upload component, and a logged-in suite connection to it. */
async function startStack(faults: string[] = []): Promise<Stack> {
  const domain = "partner.test";
  const certificate = await generateCertificate(domain);
  const upload = await startUploadService({ domain, tls: certificate, faults: new Set(faults) });
  const server = await startReferenceServer({
    domain,
    faults: new Set(faults),
    classifyNumber,
    partnerUsers: [{ username: "reflector", password: "reflector-secret" }],
    components: [upload.component],
  }).catch(async (err: unknown) => {
    await upload.stop();
    throw err;
  });
  let conn: XmppConnection;
  try {
    conn = await XmppConnection.connectAndLogin(
      { service: `xmpp://${server.host}:${server.port}`, domain, tls: { ca: server.caCertPem } },
      { username: `tpc-test-upload-${++users}`, password: "upload-password", register: { phone: "+33612345678" } },
    );
  } catch (err) {
    await server.stop();
    await upload.stop();
    throw err;
  }
  return {
    server,
    upload,
    conn,
    ca: server.caCertPem,
    async stop() {
      await conn.close().catch(() => undefined);
      await server.stop();
      await upload.stop();
    },
  };
}

async function expectStanzaError(promise: Promise<unknown>): Promise<StanzaError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof StanzaError) return err;
    throw err;
  }
  assert.fail("expected a stanza error");
}

async function expectTransferError(promise: Promise<unknown>): Promise<HttpTransferError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof HttpTransferError) return err;
    throw err;
  }
  assert.fail("expected an HTTP transfer error");
}

describe("XEP-0363 upload service (reference partner)", () => {
  describe("compliant", () => {
    let stack: Stack;
    before(async () => {
      stack = await startStack();
    });
    after(() => stack?.stop());

    it("is found by disco#items on the domain and advertises store/file and max-file-size ≥ 16 MiB", async () => {
      const found = await discoverUploadService(stack.conn, stack.server.domain);
      assert.ok(found);
      assert.equal(found.jid, `upload.${stack.server.domain}`);
      assert.equal(found.maxFileSize, DEFAULT_MAX_FILE_SIZE);
      assert.ok(found.maxFileSize! >= SIXTEEN_MIB + 16, "room for 16 MiB of plaintext and the GCM tag");
      const identity = found.info.getChild("identity");
      assert.deepEqual([identity?.attrs.category, identity?.attrs.type], ["store", "file"]);
      assert.equal(stack.upload.maxFileSize, found.maxFileSize);
    });

    it("hands out a slot whose PUT stores the bytes (201) and whose GET returns exactly them", async () => {
      const body = randomBytes(100_000);
      const slot = await requestSlot(stack.conn, stack.upload.jid, { filename: "photo 1.jpg", size: body.length, contentType: "application/octet-stream" });
      assert.equal(slot.getUrl, slot.putUrl);
      assert.match(slot.putUrl, new RegExp(`^https://127\\.0\\.0\\.1:${stack.upload.port}/upload/[A-Za-z0-9_-]{24}/photo%201\\.jpg$`));
      assert.deepEqual(slot.headers, {});
      assert.equal((await httpGet(slot.getUrl, { ca: stack.ca, maxBytes: body.length })).status, 404, "nothing before the PUT");
      const put = await httpPut(slot.putUrl, body, { ca: stack.ca, headers: { "Content-Type": "application/octet-stream" } });
      assert.equal(put.status, 201, put.text);
      const got = await httpGet(slot.getUrl, { ca: stack.ca, maxBytes: body.length });
      assert.equal(got.status, 200);
      assert.equal(got.headers["content-type"], "application/octet-stream");
      assert.ok(got.body.equals(body));
      assert.ok(stack.upload.blobs().get(slot.getUrl)?.equals(body));
    });

    it("refuses a second PUT to the same slot with 409 and keeps the first upload", async () => {
      const first = randomBytes(1000);
      const slot = await requestSlot(stack.conn, stack.upload.jid, { filename: "once.bin", size: first.length });
      assert.equal((await httpPut(slot.putUrl, first, { ca: stack.ca })).status, 201);
      assert.equal((await httpPut(slot.putUrl, randomBytes(1000), { ca: stack.ca })).status, 409);
      assert.ok((await httpGet(slot.getUrl, { ca: stack.ca, maxBytes: 1000 })).body.equals(first));
    });

    it("refuses a slot over the limit with modify/not-acceptable + file-too-large carrying max-file-size", async () => {
      const err = await expectStanzaError(requestSlot(stack.conn, stack.upload.jid, { filename: "big.bin", size: stack.upload.maxFileSize + 1 }));
      assert.equal(err.error.type, "modify");
      assert.equal(err.condition, "not-acceptable");
      assert.deepEqual(err.error.problems, []);
      assert.deepEqual(fileTooLarge(err), { condition: "not-acceptable", type: "modify", maxFileSize: stack.upload.maxFileSize });
      assert.equal(err.stanza.attrs.from, stack.upload.jid);
    });

    it("refuses a slot request without a size, with a bad size or without a filename (bad-request)", async () => {
      const ask = (attrs: Record<string, string>) =>
        expectStanzaError(stack.conn.iq(xml("iq", { type: "get", to: stack.upload.jid }, xml("request", { xmlns: NS.upload, ...attrs }))));
      const requests: Record<string, string>[] = [{ filename: "a.bin" }, { filename: "a.bin", size: "-1" }, { filename: "a.bin", size: "12kB" }, { size: "10" }, { filename: "../x", size: "10" }];
      for (const attrs of requests) {
        const err = await ask(attrs);
        assert.equal(err.condition, "bad-request", JSON.stringify(attrs));
        assert.equal(err.error.type, "modify");
        assert.equal(fileTooLarge(err), undefined);
      }
      const unknown = await expectStanzaError(stack.conn.iq(xml("iq", { type: "get", to: stack.upload.jid }, xml("query", { xmlns: "jabber:iq:version" }))));
      assert.equal(unknown.condition, "service-unavailable");
    });

    it("refuses a PUT whose Content-Length differs from the slot (400 shorter, 413 longer) and stores nothing", async () => {
      const size = 5000;
      const slot = await requestSlot(stack.conn, stack.upload.jid, { filename: "exact.bin", size });
      const before = stack.upload.blobs().size;
      assert.equal((await httpPut(slot.putUrl, randomBytes(size - 1), { ca: stack.ca })).status, 400);
      assert.equal((await httpPut(slot.putUrl, randomBytes(size + 1), { ca: stack.ca })).status, 413);
      // The header lies about the body: refused on the headers alone, the answer is read.
      assert.equal((await httpPut(slot.putUrl, randomBytes(size), { ca: stack.ca, contentLength: size + 7 })).status, 413);
      assert.equal((await httpPut(slot.putUrl, randomBytes(size), { ca: stack.ca, contentLength: size - 7 })).status, 400);
      assert.equal(stack.upload.blobs().size, before);
      assert.equal((await httpGet(slot.getUrl, { ca: stack.ca, maxBytes: size * 2 })).status, 404);
      // A refused PUT leaves the slot open: the right one is still taken.
      const body = randomBytes(size);
      assert.equal((await httpPut(slot.putUrl, body, { ca: stack.ca })).status, 201);
      assert.ok((await httpGet(slot.getUrl, { ca: stack.ca, maxBytes: size })).body.equals(body));
    });

    it("verifies TLS with the partner's certificate (IP SAN 127.0.0.1) and fails without it", async () => {
      const cert = new X509Certificate(stack.ca);
      assert.match(cert.subjectAltName ?? "", /DNS:partner\.test/);
      assert.match(cert.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);
      const slot = await requestSlot(stack.conn, stack.upload.jid, { filename: "t.bin", size: 3 });
      const untrusted = await expectTransferError(httpPut(slot.putUrl, Buffer.from("abc")));
      assert.equal(untrusted.kind, "tls");
      const otherCa = (await generateCertificate("other.test")).certPem;
      assert.equal((await expectTransferError(httpGet(slot.getUrl, { ca: otherCa, maxBytes: 10 }))).kind, "tls");
      assert.equal(stack.upload.blobs().has(slot.putUrl), false);
      assert.equal((await httpPut(slot.putUrl, Buffer.from("abc"), { ca: stack.ca })).status, 201);
    });

    it("with insecure (tls.insecure, --insecure) accepts a certificate the given CA did not sign; the transfer is the same", async () => {
      const otherCa = (await generateCertificate("other.test")).certPem;
      const body = randomBytes(3000);
      const slot = await requestSlot(stack.conn, stack.upload.jid, { filename: "insecure.bin", size: body.length });
      const refused = await expectTransferError(httpPut(slot.putUrl, body, { ca: otherCa }));
      assert.equal(refused.kind, "tls");
      assert.match(refused.message, /^TLS with https:\/\/127\.0\.0\.1:\d+ failed: .+ \([A-Z_]+\)$/);
      assert.equal((await expectTransferError(httpGet(slot.getUrl, { ca: otherCa, maxBytes: body.length }))).kind, "tls");
      assert.equal(stack.upload.blobs().has(slot.putUrl), false);
      assert.equal((await httpPut(slot.putUrl, body, { ca: otherCa, insecure: true })).status, 201);
      const got = await httpGet(slot.getUrl, { ca: otherCa, insecure: true, maxBytes: body.length });
      assert.equal(got.status, 200);
      assert.ok(got.body.equals(body));
      // insecure: false is the default: verification stays on.
      assert.equal((await expectTransferError(httpGet(slot.getUrl, { ca: otherCa, insecure: false, maxBytes: body.length }))).kind, "tls");
    });

    it("streams a PUT body and digests a GET without holding either (StreamedBody, httpGetDigest)", async () => {
      const size = 300_000;
      const chunk = randomBytes(1000);
      const chunks = { *[Symbol.iterator]() { for (let i = 0; i < size / chunk.length; i++) yield chunk; } };
      const slot = await requestSlot(stack.conn, stack.upload.jid, { filename: "streamed.bin", size });
      assert.equal((await httpPut(slot.putUrl, { length: size, chunks }, { ca: stack.ca })).status, 201);
      const expected = Buffer.concat([...chunks]);
      assert.ok(stack.upload.blobs().get(slot.getUrl)?.equals(expected));
      const digest = await httpGetDigest(slot.getUrl, { ca: stack.ca, maxBytes: size });
      assert.deepEqual([digest.status, digest.bytes, digest.sha256], [200, size, createHash("sha256").update(expected).digest("hex")]);
      assert.equal((await expectTransferError(httpGetDigest(slot.getUrl, { ca: stack.ca, maxBytes: size - 1 }))).kind, "too-large");
    });

    it("answers 404 for unknown slots and 405 for other methods; the client caps downloads", async () => {
      const slot = await requestSlot(stack.conn, stack.upload.jid, { filename: "m.bin", size: 2048 });
      const bogus = slot.getUrl.replace(/\/upload\/[^/]+\//, "/upload/AAAAAAAAAAAAAAAAAAAAAAAA/");
      assert.equal((await httpPut(bogus, randomBytes(2048), { ca: stack.ca })).status, 404);
      assert.equal((await httpGet(slot.getUrl.replace(/m\.bin$/, "n.bin"), { ca: stack.ca, maxBytes: 10 })).status, 404);
      assert.equal((await httpPut(slot.putUrl, randomBytes(2048), { ca: stack.ca })).status, 201);
      const tooLarge = await expectTransferError(httpGet(slot.getUrl, { ca: stack.ca, maxBytes: 2047 }));
      assert.equal(tooLarge.kind, "too-large");
      const status = await new Promise<number>((resolve, reject) => {
        const socket = tls.connect({ host: "127.0.0.1", port: stack.upload.port, ca: stack.ca }, () => {
          socket.write(`DELETE ${new URL(slot.getUrl).pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
        });
        let text = "";
        socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
        socket.on("end", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1])));
        socket.on("error", reject);
      });
      assert.equal(status, 405);
      assert.equal((await httpGet(slot.getUrl, { ca: stack.ca, maxBytes: 2048 })).status, 200, "still there");
    });

    it("round-trips a blob of exactly max-file-size and a 16 MiB encrypted file (throughput logged)", async function () {
      this.timeout(60_000);
      const size = stack.upload.maxFileSize;
      const blob = randomBytes(size);
      const slot = await requestSlot(stack.conn, stack.upload.jid, { filename: "limit.bin", size });
      const t0 = performance.now();
      const put = await httpPut(slot.putUrl, blob, { ca: stack.ca, timeoutMs: 30_000 });
      const t1 = performance.now();
      const got = await httpGet(slot.getUrl, { ca: stack.ca, maxBytes: size, timeoutMs: 30_000 });
      const t2 = performance.now();
      assert.equal(put.status, 201);
      assert.equal(got.status, 200);
      assert.ok(got.body.equals(blob));
      const mibs = (ms: number) => ((size / 1024 / 1024) / (ms / 1000)).toFixed(0);
      console.log(`      ${size} bytes: PUT ${(t1 - t0).toFixed(0)} ms (${mibs(t1 - t0)} MiB/s), GET ${(t2 - t1).toFixed(0)} ms (${mibs(t2 - t1)} MiB/s)`);

      const media = encryptMedia(randomBytes(SIXTEEN_MIB));
      const mediaSlot = await requestSlot(stack.conn, stack.upload.jid, { filename: "sixteen.bin", size: media.blob.length });
      assert.equal((await httpPut(mediaSlot.putUrl, media.blob, { ca: stack.ca, timeoutMs: 30_000 })).status, 201);
      assert.ok((await httpGet(mediaSlot.getUrl, { ca: stack.ca, maxBytes: media.blob.length, timeoutMs: 30_000 })).body.equals(media.blob));
    });
  });

  describe("faults", () => {
    it("documents every fault", () => {
      assert.deepEqual(Object.keys(UPLOAD_FAULTS).sort(), ["media-tiny-limit", "upload-length-unchecked"]);
    });

    it("media-tiny-limit advertises and enforces 1 MiB", async () => {
      const stack = await startStack(["media-tiny-limit"]);
      try {
        const found = await discoverUploadService(stack.conn, stack.server.domain);
        assert.equal(found?.maxFileSize, 1024 * 1024);
        const err = await expectStanzaError(requestSlot(stack.conn, stack.upload.jid, { filename: "x.bin", size: 1024 * 1024 + 1 }));
        assert.equal(fileTooLarge(err)?.maxFileSize, 1024 * 1024);
        await requestSlot(stack.conn, stack.upload.jid, { filename: "x.bin", size: 1024 * 1024 });
      } finally {
        await stack.stop();
      }
    });

    it("upload-length-unchecked stores a PUT whose Content-Length differs from the slot", async () => {
      const stack = await startStack(["upload-length-unchecked"]);
      try {
        const slot = await requestSlot(stack.conn, stack.upload.jid, { filename: "x.bin", size: 5000 });
        const body = randomBytes(4000);
        assert.equal((await httpPut(slot.putUrl, body, { ca: stack.ca })).status, 201);
        assert.ok((await httpGet(slot.getUrl, { ca: stack.ca, maxBytes: 5000 })).body.equals(body));
        const longer = await requestSlot(stack.conn, stack.upload.jid, { filename: "y.bin", size: 10 });
        assert.equal((await httpPut(longer.putUrl, randomBytes(20), { ca: stack.ca })).status, 201);
        assert.equal(stack.upload.blobs().get(longer.getUrl)?.length, 20);
        // A header that promises more than is sent: this service waits for it, the client's deadline ends it.
        const lying = await requestSlot(stack.conn, stack.upload.jid, { filename: "z.bin", size: 10 });
        const timeout = await expectTransferError(httpPut(lying.putUrl, randomBytes(10), { ca: stack.ca, contentLength: 30, timeoutMs: 300 }));
        assert.equal(timeout.kind, "timeout");
        assert.equal(stack.upload.blobs().has(lying.getUrl), false);
      } finally {
        await stack.stop();
      }
    });
  });

  describe("wired into the reference partner", () => {
    it("on ::1 too: the service URI is bracketed and uploads verify with the partner's CA", async () => {
      const partner = await startReferencePartner({ host: "::1" });
      try {
        assert.match(partner.config.service, /^xmpp:\/\/\[::1\]:\d+$/);
        const conn = await XmppConnection.connectAndLogin(
          { service: partner.config.service, domain: partner.config.domain, tls: partner.config.tls },
          { username: "tpc-test-upload-v6", password: "upload-password", register: { phone: "+33612345678" } },
        );
        try {
          const found = await discoverUploadService(conn, partner.config.domain);
          const body = randomBytes(321);
          const slot = await requestSlot(conn, found!.jid, { filename: "v6.bin", size: body.length });
          assert.match(slot.putUrl, /^https:\/\/\[::1\]:\d+\//);
          assert.equal((await httpPut(slot.putUrl, body, { ca: partner.caCertPem })).status, 201);
          assert.ok((await httpGet(slot.getUrl, { ca: partner.caCertPem, maxBytes: 321 })).body.equals(body));
        } finally {
          await conn.close();
        }
      } finally {
        await partner.stop();
      }
    });

    it("is listed on the partner's domain, verifies with the partner's CA, and stops with it", async () => {
      const partner = await startReferencePartner();
      let port = 0;
      try {
        const conn = await XmppConnection.connectAndLogin(
          { service: partner.config.service, domain: partner.config.domain, tls: partner.config.tls },
          { username: "tpc-test-upload-partner", password: "upload-password", register: { phone: "+33612345678" } },
        );
        try {
          const found = await discoverUploadService(conn, partner.config.domain);
          assert.equal(found?.jid, `upload.${partner.config.domain}`);
          assert.ok(found.maxFileSize! >= SIXTEEN_MIB);
          const body = randomBytes(777);
          const slot = await requestSlot(conn, found.jid, { filename: "p.bin", size: body.length });
          port = Number(new URL(slot.putUrl).port);
          assert.equal((await httpPut(slot.putUrl, body, { ca: partner.caCertPem })).status, 201);
          assert.ok((await httpGet(slot.getUrl, { ca: partner.caCertPem, maxBytes: 777 })).body.equals(body));
        } finally {
          await conn.close();
        }
      } finally {
        await partner.stop();
      }
      const refused = await expectTransferError(httpGet(`https://127.0.0.1:${port}/upload/x/y`, { ca: partner.caCertPem, maxBytes: 1 }));
      assert.equal(refused.kind, "refused");
    });

    it("stop() closes connections still open to the HTTPS server", async () => {
      const domain = "partner.test";
      const upload = await startUploadService({ domain, tls: await generateCertificate(domain) });
      const socket = tls.connect({ host: "127.0.0.1", port: upload.port, ca: (await generateCertificate(domain)).certPem });
      await new Promise<void>((resolve, reject) => {
        socket.once("secureConnect", resolve);
        socket.once("error", reject);
      });
      const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
      socket.on("error", () => undefined);
      await upload.stop();
      await closed;
    });
  });
});
