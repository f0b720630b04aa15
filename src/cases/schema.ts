// JSON Schema of a case file (format 1). docs/cases.md describes every field for humans.
import { AREAS, HOOKS, NEEDS, TAGS } from "./vocabulary.ts";

const label = { type: "string", pattern: "^[a-z][a-z0-9-]*$" };
const actorName = { type: "string", pattern: "^[a-z][a-z0-9]*$", not: { enum: ["reflector", "optout", "server", "nobody"] } };
/** A peer: an actor of the case, the endpoint's reflector or opted-out user, the server, a nonexistent user, or a literal JID. */
const target = { type: "string", pattern: "^(reflector|optout|server|nobody|[a-z][a-z0-9]*|jid:[^\\s]+)$" };
const requirement = { type: "string", pattern: "^[A-Z]{3}-\\d{2}$" };
const stanzaKind = { enum: ["receipt", "reflect", "error", "message", "encrypted", "presence", "iq", "any"] };
const appAttrs = { type: "object", additionalProperties: { type: "string" } };

function step(name: string, properties: Record<string, unknown>, required: string[]) {
  return {
    type: "object",
    additionalProperties: false,
    required: [name],
    properties: {
      [name]: { type: "object", additionalProperties: false, required, properties },
      note: { type: "string" },
    },
  };
}

const matcher = {
  actor: actorName,
  device: { type: "integer", minimum: 0 },
  stanza: stanzaKind,
  from: target,
  ref: label,
  condition: { type: "string" },
  app: { type: "string" },
  appAttrs,
  requirement,
};

export const STEP_NAMES = [
  "connect", "disconnect", "session", "send", "send-raw", "replay", "expect", "expect-no", "barrier",
  "hook", "iq", "devicelist", "bundles", "prekey-consumed", "probe", "receive", "check-message",
  "release", "burst", "expect-all", "rotate-identity", "publish-devicelist", "check-state",
  "upload-service", "upload-probe", "send-media", "check-media",
  "register", "number-change", "same-error", "disco-features",
  "block", "block-in-flight", "reconnect-reflector", "cached-session", "blocklist",
] as const;

export const caseSchema = {
  $id: "https://chatconform.invalid/schema/case-1.json",
  type: "object",
  additionalProperties: false,
  required: ["format", "id", "title", "requirements", "level", "tags", "spec", "steps"],
  properties: {
    format: { const: 1 },
    id: { type: "string", pattern: "^[a-z]+/[a-z0-9-]+$" },
    title: { type: "string", minLength: 10, maxLength: 140 },
    requirements: { type: "array", minItems: 1, uniqueItems: true, items: requirement },
    level: { enum: ["MUST", "SHOULD", "MAY"] },
    needs: { type: "array", uniqueItems: true, items: { enum: [...NEEDS] } },
    tags: { type: "array", minItems: 1, uniqueItems: true, items: { enum: [...TAGS] } },
    spec: { type: "string", minLength: 10 },
    timeoutMs: { type: "integer", minimum: 100, maximum: 120000 },
    actors: {
      type: "object",
      additionalProperties: false,
      patternProperties: {
        "^[a-z][a-z0-9]*$": {
          type: "object",
          additionalProperties: false,
          properties: {
            phone: { type: "string", pattern: "^[+0-9 ()#.-]+$" },
            devices: { type: "integer", minimum: 1, maximum: 5 },
            testPrefix: { type: "boolean" },
            account: { enum: ["ineligible"] },
          },
        },
      },
    },
    steps: {
      type: "array",
      minItems: 1,
      items: {
        oneOf: [
          step("connect", { actor: actorName, device: { type: "integer", minimum: 0 }, publish: { enum: [true, false, "bundle-only"] } }, ["actor"]),
          step("disconnect", { actor: actorName }, ["actor"]),
          step("session", { actor: actorName, device: { type: "integer", minimum: 0 }, with: target, preKey: { enum: ["reuse"] } }, ["actor", "with"]),
          step("send", {
            actor: actorName,
            device: { type: "integer", minimum: 0 },
            to: target,
            kind: { type: "string" },
            text: { type: "string" },
            as: label,
            fields: { type: "object" },
            payload: { type: "string" },
            tamper: { enum: ["key", "mac", "payload", "iv"] },
            keyTransport: { type: "boolean" },
            hold: { type: "boolean" },
            body: { type: "string" },
            skipAhead: { type: "integer", minimum: 1, maximum: 5000 },
          }, ["actor", "to", "as"]),
          step("send-raw", { actor: actorName, device: { type: "integer", minimum: 0 }, xml: { type: "string", minLength: 3 }, as: label }, ["actor", "xml"]),
          step("replay", { actor: actorName, ref: label }, ["actor", "ref"]),
          step("expect", { ...matcher, as: label, wait: { type: "boolean" }, hash: { type: "boolean" } }, ["actor", "stanza", "requirement"]),
          step("expect-no", { ...matcher, barrier: { enum: ["message", "hook", "ping", "none"] } }, ["actor", "stanza", "requirement"]),
          step("barrier", { actor: actorName, via: { enum: ["message", "hook", "ping"] }, to: target }, ["actor", "via"]),
          step("hook", {
            actor: actorName,
            name: { enum: [...HOOKS] },
            args: {
              type: "object",
              additionalProperties: false,
              properties: {
                jid: target, to: target, kind: { type: "string" }, text: { type: "string" },
                fixture: { type: "string" }, count: { type: "integer", minimum: 1, maximum: 1000 },
              },
            },
            as: label,
            expect: { enum: ["completed", "forbidden"] },
            lacks: label,
            bounce: { type: "object", additionalProperties: false, properties: { condition: { type: "string" }, app: { type: "string" } } },
            lacksText: { type: "string", minLength: 3 },
            requirement,
          }, ["actor", "name"]),
          step("iq", {
            actor: actorName,
            to: target,
            type: { enum: ["get", "set"] },
            xml: { type: "string", minLength: 3 },
            expect: { enum: ["result", "error"] },
            condition: { type: "string" },
            app: { type: "string" },
            appAttrs,
            as: label,
            requirement,
          }, ["actor", "to", "type", "xml", "expect", "requirement"]),
          step("devicelist", { actor: actorName, of: target, requirement }, ["actor", "of", "requirement"]),
          step("bundles", {
            actor: actorName,
            of: target,
            check: { enum: ["prekey-count", "signature", "prekey-ids"] },
            min: { type: "integer", minimum: 1 },
            requirement,
          }, ["actor", "of", "check", "requirement"]),
          step("prekey-consumed", { actor: actorName, of: target, withinMs: { type: "integer", minimum: 100 }, requirement }, ["actor", "of", "requirement"]),
          step("probe", { actor: actorName, check: { enum: ["starttls-required", "plain-only-over-tls"] }, requirement }, ["check", "requirement"]),
          step("receive", { actor: actorName, device: { type: "integer", minimum: 0 }, from: target, as: label, requirement }, ["actor", "from", "as", "requirement"]),
          step("check-message", { actor: actorName, ref: label, check: { enum: ["hints", "schema", "device-keys"] }, requirement }, ["actor", "ref", "check", "requirement"]),
          step("release", { actor: actorName, refs: { type: "array", minItems: 1, items: label } }, ["actor", "refs"]),
          step("burst", { actor: actorName, to: target, count: { type: "integer", minimum: 2, maximum: 1000 }, as: label, order: { enum: ["in-order", "shuffled", "reversed"] } }, ["actor", "to", "count", "as"]),
          step("expect-all", { actor: actorName, stanza: { enum: ["receipt", "reflect"] }, ref: label, ordered: { type: "boolean" }, requirement }, ["actor", "stanza", "ref", "requirement"]),
          step("rotate-identity", { actor: actorName, device: { type: "integer", minimum: 0 } }, ["actor"]),
          step("publish-devicelist", { actor: actorName, devices: { type: "array", minItems: 1, items: { type: "integer", minimum: 0 } } }, ["actor", "devices"]),
          step("check-state", { actor: actorName, ref: label, check: { enum: ["identity-changed", "received"] }, of: target, lists: label, requirement }, ["actor", "ref", "check", "of", "requirement"]),
          step("upload-service", { actor: actorName, requirement }, ["actor", "requirement"]),
          step("upload-probe", { actor: actorName, check: { enum: ["roundtrip", "oversize", "length-mismatch", "limit", "https"] }, requirement }, ["actor", "check", "requirement"]),
          step("send-media", {
            actor: actorName, device: { type: "integer", minimum: 0 }, to: target, fixture: { type: "string", pattern: "^[a-z0-9-]+$" }, as: label,
            kind: { type: "string" }, mime: { type: "string" }, text: { type: "string" }, fields: { type: "object" }, mediaFields: { type: "object" },
            tamper: { enum: ["blob"] },
          }, ["actor", "to", "fixture", "as"]),
          step("check-media", { actor: actorName, ref: label, check: { enum: ["content", "metadata"] }, fixture: { type: "string" }, blobRequirement: requirement, requirement }, ["actor", "ref", "check", "requirement"]),
          step("register", {
            phone: { type: "string", minLength: 1 }, phoneOf: actorName, username: actorName,
            expect: { enum: ["policy", "accepted", "refused"] }, as: label, requirement,
          }, []),
          step("number-change", { actor: actorName, number: { type: "string", minLength: 1 }, requirement }, ["actor", "number", "requirement"]),
          step("same-error", { refs: { type: "array", minItems: 2, items: label }, requirement }, ["refs", "requirement"]),
          step("disco-features", { actor: actorName, of: target, requirement }, ["actor", "of", "requirement"]),
          step("block", { actor: actorName, jid: target }, ["actor", "jid"]),
          step("block-in-flight", { actor: actorName, refs: { type: "array", minItems: 1, items: label } }, ["actor", "refs"]),
          step("reconnect-reflector", { actor: actorName }, ["actor"]),
          step("cached-session", { actor: actorName, device: { type: "integer", minimum: 0 }, with: target }, ["actor", "with"]),
          step("blocklist", {
            actor: actorName,
            lists: { type: "array", minItems: 1, items: target },
            lacks: { type: "array", minItems: 1, items: target },
            requirement,
          }, ["actor", "requirement"]),
        ],
      },
    },
  },
} as const;

export const AREA_NAMES: readonly string[] = AREAS;
