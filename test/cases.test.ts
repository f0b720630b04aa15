import assert from "node:assert/strict";
import { DEFAULT_CASES_DIR, formatProblem, listCaseFiles, loadCaseFile, loadCases } from "../src/cases/loader.ts";
import { selectCases } from "../src/cases/select.ts";
import { loadRequirements } from "../src/checks/requirements.ts";
import { lintTempCase, writeTempCase } from "./temp-case.ts";

const requirements = loadRequirements();

const VALID = `format: 1
id: encryption/sample
title: A sample case that sends one message and expects its receipt
requirements: [ENC-06]
level: MUST
needs: [reflector]
tags: [smoke]
spec: TPC/1 §7, a receipt after acceptance.
actors:
  alice: {}
steps:
  - connect: { actor: alice }
  - session: { actor: alice, with: reflector }
  - send: { actor: alice, to: reflector, kind: text, as: m1 }
  - expect: { actor: alice, stanza: receipt, ref: m1, requirement: ENC-06 }
`;

describe("case loader and lint", () => {
  it("loads the shipped catalogue without problems", () => {
    const { cases, problems } = loadCases(requirements, listCaseFiles(DEFAULT_CASES_DIR));
    assert.deepEqual(problems.map(formatProblem), []);
    assert.ok(cases.length >= 12, `only ${cases.length} cases`);
    for (const c of cases) assert.match(c.sha256, /^[0-9a-f]{64}$/);
  });

  it("accepts a valid case and hashes the file", () => {
    const { file, root } = writeTempCase("encryption", "sample", VALID);
    const result = loadCaseFile(file, requirements, root);
    assert.deepEqual(result.problems, []);
    assert.equal(result.case?.id, "encryption/sample");
    assert.equal(result.case?.area, "encryption");
  });

  it("reports every problem with its line: unknown step, requirement, tag, undefined label, id mismatch", () => {
    const body = VALID
      .replace("id: encryption/sample", "id: encryption/other")
      .replace("requirements: [ENC-06]", "requirements: [ENC-06, XYZ-99]")
      .replace("tags: [smoke]", "tags: [smoke, not-a-tag]");
    const { file, root } = writeTempCase("encryption", "sample", body);
    const { problems } = loadCaseFile(file, requirements, root);
    const text = problems.map(formatProblem).join("\n");
    // Schema errors come first and alone; fix them, then semantic errors appear.
    assert.match(text, /sample\.yaml:7: tags\.1: must be one of/);
    const second = writeTempCase("encryption", "sample", body.replace("tags: [smoke, not-a-tag]", "tags: [smoke]"));
    const semantic = loadCaseFile(second.file, requirements, second.root).problems.map(formatProblem).join("\n");
    assert.match(semantic, /sample\.yaml:2: id "encryption\/other" must equal the file's place, "encryption\/sample"/);
    assert.match(semantic, /sample\.yaml:4: unknown requirement XYZ-99/);
  });

  it("names an unknown step and an unknown field of a known step", () => {
    const body = VALID.replace("  - session: { actor: alice, with: reflector }", "  - teleport: { actor: alice }\n  - session: { actor: alice, with: reflector, colour: blue }");
    const text = lintTempCase("encryption", "sample", body);
    assert.match(text, /sample\.yaml:13: steps\.1: is not a known step/);
    assert.match(text, /sample\.yaml:14: steps\.2\.session: unknown field "colour"/);
  });

  it("refuses a label used before it is defined and a hook without its need", () => {
    const body = VALID
      .replace("ref: m1", "ref: m9")
      .replace("  - connect: { actor: alice }", "  - connect: { actor: alice }\n  - hook: { actor: alice, name: state }");
    const text = lintTempCase("encryption", "sample", body);
    assert.match(text, /step hook: needs must list "hook:state"/);
    assert.match(text, /step expect: ref "m9" is not defined/);
  });

  it("checks the peers of block and blocklist steps like any other peer", () => {
    const body = VALID
      .replace("needs: [reflector]", "needs: [reflector, hook:block]")
      .replace("  - connect: { actor: alice }", "  - connect: { actor: alice }\n  - block: { actor: alice, jid: bob }\n  - blocklist: { actor: alice, lists: [reflector, carol], lacks: [optout], requirement: ENC-06 }");
    const text = lintTempCase("encryption", "sample", body);
    assert.match(text, /sample\.yaml:13: step block: jid "bob" is neither an actor of this case/);
    assert.match(text, /sample\.yaml:14: step blocklist: lists\.1 "carol" is neither an actor of this case/);
    assert.match(text, /sample\.yaml:14: step blocklist: talks to the opted-out user, so needs must list "optout"/);
    assert.doesNotMatch(text, /lists\.0/);
  });

  it("reports malformed YAML with its line", () => {
    const { file, root } = writeTempCase("encryption", "sample", "format: 1\nid: [unclosed\n");
    const { problems } = loadCaseFile(file, requirements, root);
    assert.equal(problems.length > 0, true);
    assert.match(formatProblem(problems[0]!), /sample\.yaml:\d+: YAML: /);
  });

  it("selects by id prefix, grep and tag, and skips the rest", () => {
    const { cases } = loadCases(requirements, listCaseFiles(DEFAULT_CASES_DIR));
    const byPrefix = selectCases(cases, { cases: ["transport/"] });
    assert.ok(byPrefix.selected.length > 0);
    assert.ok(byPrefix.selected.every((c) => c.id.startsWith("transport/")));
    assert.equal(byPrefix.selected.length + byPrefix.skipped.length, cases.length);
    const byTag = selectCases(cases, { tags: ["replay"] });
    assert.ok(byTag.selected.every((c) => c.tags.includes("replay")));
    assert.throws(() => selectCases(cases, { cases: ["nope/never"] }), /no case has that id/);
  });
});
