// Self-signed certificates for the in-process reference partner (and any other loopback test server).
// One certificate per domain and process: generation is cached, so repeated server starts are cheap.
import { generate } from "selfsigned";

export interface GeneratedCertificate {
  keyPem: string;
  /** Self-signed: it is its own CA, so clients trust it by passing it as `ca`. */
  certPem: string;
}

const cache = new Map<string, Promise<GeneratedCertificate>>();

/**
 * A P-256 certificate for `domain` (CN and subjectAltName DNS), valid from yesterday for a year. It
 * also names the loopback addresses (subjectAltName IP 127.0.0.1 and ::1), so that a loopback HTTPS service
 * of the same partner (the upload service, whose URLs are https://127.0.0.1:PORT/…) verifies with
 * this certificate as the CA and no servername override.
 */
export function generateCertificate(domain: string): Promise<GeneratedCertificate> {
  let pending = cache.get(domain);
  if (!pending) {
    pending = create(domain);
    // A failed generation is not cached: the next caller tries again.
    pending.catch(() => cache.delete(domain));
    cache.set(domain, pending);
  }
  return pending;
}

async function create(domain: string): Promise<GeneratedCertificate> {
  const notBeforeDate = new Date(Date.now() - 24 * 3600 * 1000);
  const notAfterDate = new Date(notBeforeDate.getTime() + 366 * 24 * 3600 * 1000);
  const pems = await generate([{ name: "commonName", value: domain }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: "basicConstraints", cA: true },
      { name: "keyUsage", digitalSignature: true, keyCertSign: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [{ type: 2, value: domain }, { type: 7, ip: "127.0.0.1" }, { type: 7, ip: "::1" }] },
    ],
  });
  return { keyPem: pems.private, certPem: pems.cert };
}
