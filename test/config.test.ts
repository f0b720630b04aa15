import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ConfigError, loadConfigFile } from "../src/config/config.ts";

function writeConfig(text: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "chatconform-config-"));
  const file = path.join(dir, "endpoint.yaml");
  writeFileSync(file, text);
  return file;
}

describe("endpoint config", () => {
  it("normalises a minimal config with defaults", () => {
    const file = writeConfig("endpoint: xmpp://127.0.0.1:5222\ndomain: partner.example\nreflector: reflector@partner.example\nhooks: [state]\n");
    const config = loadConfigFile(file);
    assert.equal(config.service, "xmpp://127.0.0.1:5222");
    assert.equal(config.accounts.mode, "register");
    assert.equal(config.accounts.prefix, "tpc-test-");
    assert.equal(config.policy, "eea");
    assert.deepEqual(config.hooks, ["state"]);
    assert.equal(config.timeouts.stanza, 5000);
    assert.equal(config.timeouts.http, 10_000);
  });

  it("takes the media HTTP deadline from timeouts.http, within bounds", () => {
    const base = "endpoint: xmpp://127.0.0.1:5222\ndomain: partner.example\n";
    assert.equal(loadConfigFile(writeConfig(`${base}timeouts: { http: 30000 }\n`)).timeouts.http, 30_000);
    assert.throws(() => loadConfigFile(writeConfig(`${base}timeouts: { http: 10 }\n`)), /timeouts\.http: must be >= 50/);
  });

  it("reports all schema problems at once as path: message", () => {
    const file = writeConfig("endpoint: http://nope\ndomain: partner.example\nhooks: [state, dance]\npolicy: mars\ntimeouts: { sasl: 1 }\ncolour: blue\n");
    assert.throws(() => loadConfigFile(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const text = err.problems.join("\n");
      assert.match(text, /endpoint: must match pattern/);
      assert.match(text, /hooks\.1: must be one of reset, block/);
      assert.match(text, /policy: must be one of eea, whatsapp-european-region/);
      assert.match(text, /timeouts\.sasl: must be >= 50/);
      assert.match(text, /\(config\): unknown key "colour"/);
      assert.equal(err.problems.length, 5);
      return true;
    });
  });

  it("reports semantic problems: missing endpoint, unreadable CA, reflector off-domain, empty static list", () => {
    const file = writeConfig("domain: partner.example\ntls: { ca: ./missing.pem }\nreflector: reflector@elsewhere.example\naccounts: { mode: static }\n");
    assert.throws(() => loadConfigFile(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const text = err.problems.join("\n");
      assert.match(text, /endpoint: no endpoint given/);
      assert.match(text, /tls\.ca: cannot read .*missing\.pem: ENOENT/);
      assert.match(text, /reflector: reflector@elsewhere\.example is not on the endpoint's domain/);
      assert.match(text, /accounts\.static: static mode needs at least one account/);
      return true;
    });
  });

  it("says clearly when the file is not YAML or missing", () => {
    assert.throws(() => loadConfigFile(writeConfig("domain: [unclosed\n")), /not valid YAML/);
    assert.throws(() => loadConfigFile("/nonexistent/endpoint.yaml"), /cannot read the config file: ENOENT/);
  });

  it("lets --endpoint override the file", () => {
    const file = writeConfig("endpoint: xmpp://127.0.0.1:1\ndomain: partner.example\n");
    assert.equal(loadConfigFile(file, { endpoint: "xmpps://127.0.0.1:5223" }).service, "xmpps://127.0.0.1:5223");
  });
});
