import assert from "node:assert/strict";
import { ScramClient, ScramServer, deriveCredentials } from "../src/protocol/scram.ts";

describe("SCRAM-SHA-1", () => {
  const credentials = deriveCredentials("pencil", 64);

  function exchange(clientPassword: string, tamperServerFinal = false) {
    const client = new ScramClient("user,name", clientPassword);
    const server = new ScramServer();
    assert.equal(server.start(client.first()), "user,name");
    const clientFinal = client.final(server.challenge(credentials));
    const serverFinal = server.finish(clientFinal, credentials);
    return { client, serverFinal: tamperServerFinal && serverFinal ? "v=AAAA" + serverFinal.slice(6) : serverFinal };
  }

  it("authenticates both ways with the right password", () => {
    const { client, serverFinal } = exchange("pencil");
    assert.ok(serverFinal);
    client.verifyServerFinal(serverFinal);
  });

  it("refuses a wrong password on the server", () => {
    assert.equal(exchange("wrong").serverFinal, null);
  });

  it("refuses a server that cannot prove it knows the password", () => {
    const { client, serverFinal } = exchange("pencil", true);
    assert.throws(() => client.verifyServerFinal(serverFinal!), /server signature does not verify/);
  });

  it("matches the RFC 5802 §5 example proof", () => {
    // RFC 5802 example: user "user", password "pencil", fixed nonces and salt.
    const salt = Buffer.from("QSXCR+Q6sek8bf92", "base64");
    const creds = deriveCredentials("pencil", 4096, salt);
    const server = new ScramServer();
    server.start("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
    (server as unknown as { nonce: string }).nonce = "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
    server.challenge(creds);
    const final = server.finish("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", creds);
    assert.equal(final, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
  });
});
