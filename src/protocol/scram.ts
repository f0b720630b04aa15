// SCRAM-SHA-1 (RFC 5802) message handling for both ends, built on node:crypto primitives.
// The client verifies the server signature (a server that cannot prove it knows the password fails).
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

const GS2_HEADER = "n,,";

export function saslName(name: string): string {
  return name.replace(/=/g, "=3D").replace(/,/g, "=2C");
}

function unSaslName(name: string): string {
  return name.replace(/=2C/g, ",").replace(/=3D/g, "=");
}

function parseAttributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(",")) {
    const eq = part.indexOf("=");
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}

const hmac = (key: Buffer, data: string | Buffer) => createHmac("sha1", key).update(data).digest();
const sha1 = (data: Buffer) => createHash("sha1").update(data).digest();
const xor = (a: Buffer, b: Buffer) => Buffer.from(a.map((byte, i) => byte ^ b[i]!));

/** What a server stores per account: never the password itself. */
export interface ScramCredentials {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

export function deriveCredentials(password: string, iterations: number, salt: Buffer = randomBytes(16)): ScramCredentials {
  const salted = pbkdf2Sync(password, salt, iterations, 20, "sha1");
  const clientKey = hmac(salted, "Client Key");
  return { salt, iterations, storedKey: sha1(clientKey), serverKey: hmac(salted, "Server Key") };
}

export class ScramClient {
  private readonly clientNonce = randomBytes(18).toString("base64");
  private readonly clientFirstBare: string;
  private expectedServerSignature: Buffer | null = null;

  constructor(private readonly username: string, private readonly password: string) {
    this.clientFirstBare = `n=${saslName(username)},r=${this.clientNonce}`;
  }

  /** The initial response, sent inside <auth mechanism='SCRAM-SHA-1'>. */
  first(): string {
    return GS2_HEADER + this.clientFirstBare;
  }

  /** Answer the server-first-message; throws when the server's message is unacceptable. */
  final(serverFirst: string): string {
    const attrs = parseAttributes(serverFirst);
    const nonce = attrs.get("r");
    const salt = attrs.get("s");
    const iterations = Number(attrs.get("i"));
    if (!nonce || !salt || !Number.isInteger(iterations) || iterations < 1) {
      throw new Error(`SCRAM server-first-message is malformed: ${JSON.stringify(serverFirst)}`);
    }
    if (!nonce.startsWith(this.clientNonce)) throw new Error("SCRAM server nonce does not extend the client nonce");
    if (iterations > 1_000_000) throw new Error(`SCRAM iteration count ${iterations} is unreasonably high`);
    const salted = pbkdf2Sync(this.password, Buffer.from(salt, "base64"), iterations, 20, "sha1");
    const withoutProof = `c=${Buffer.from(GS2_HEADER).toString("base64")},r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const clientKey = hmac(salted, "Client Key");
    const proof = xor(clientKey, hmac(sha1(clientKey), authMessage));
    this.expectedServerSignature = hmac(hmac(salted, "Server Key"), authMessage);
    return `${withoutProof},p=${proof.toString("base64")}`;
  }

  /** Check the server-final-message (the additional data of <success/>). */
  verifyServerFinal(serverFinal: string): void {
    if (!this.expectedServerSignature) throw new Error("SCRAM exchange is not at its final step");
    const attrs = parseAttributes(serverFinal);
    if (attrs.has("e")) throw new Error(`SCRAM server reported error: ${attrs.get("e")}`);
    const signature = Buffer.from(attrs.get("v") ?? "", "base64");
    if (signature.length !== this.expectedServerSignature.length || !timingSafeEqual(signature, this.expectedServerSignature)) {
      throw new Error("SCRAM server signature does not verify: the server did not prove it knows the password");
    }
  }
}

/** Server side of one SCRAM-SHA-1 exchange. */
export class ScramServer {
  private clientFirstBare = "";
  private serverFirst = "";
  private nonce = "";
  username = "";

  /** Parse client-first-message; returns the username so the caller can look up credentials. */
  start(clientFirst: string): string {
    if (!clientFirst.startsWith("n,")) throw new Error("channel binding is not supported");
    const secondComma = clientFirst.indexOf(",", 2);
    if (secondComma === -1) throw new Error("malformed client-first-message");
    this.clientFirstBare = clientFirst.slice(secondComma + 1);
    const attrs = parseAttributes(this.clientFirstBare);
    const user = attrs.get("n");
    const clientNonce = attrs.get("r");
    if (!user || !clientNonce) throw new Error("client-first-message lacks n= or r=");
    this.username = unSaslName(user);
    this.nonce = clientNonce + randomBytes(18).toString("base64");
    return this.username;
  }

  challenge(credentials: ScramCredentials): string {
    this.serverFirst = `r=${this.nonce},s=${credentials.salt.toString("base64")},i=${credentials.iterations}`;
    return this.serverFirst;
  }

  /** Verify the client proof; returns the server-final-message or null when the proof is wrong. */
  finish(clientFinal: string, credentials: ScramCredentials): string | null {
    const proofAt = clientFinal.lastIndexOf(",p=");
    if (proofAt === -1) return null;
    const withoutProof = clientFinal.slice(0, proofAt);
    const attrs = parseAttributes(clientFinal);
    if (attrs.get("r") !== this.nonce) return null;
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const proof = Buffer.from(attrs.get("p") ?? "", "base64");
    const clientSignature = hmac(credentials.storedKey, authMessage);
    if (proof.length !== clientSignature.length) return null;
    const clientKey = xor(proof, clientSignature);
    if (!timingSafeEqual(sha1(clientKey), credentials.storedKey)) return null;
    return `v=${hmac(credentials.serverKey, authMessage).toString("base64")}`;
  }
}
