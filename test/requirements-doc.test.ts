import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { loadRequirements } from "../src/checks/requirements.ts";
import { withRequirementTable } from "../src/checks/requirements-doc.ts";

describe("docs/profile.md", () => {
  it("carries the requirement table exactly as profile/requirements.yaml says (npm run docs)", () => {
    const doc = readFileSync(new URL("../docs/profile.md", import.meta.url), "utf8");
    assert.equal(doc, withRequirementTable(doc, loadRequirements()));
    assert.match(doc, /\| ENC-09 \| MUST \| A second key exchange that reuses a consumed one-time prekey is not accepted\. \| X3DH §4\.2 \|/);
  });
});
