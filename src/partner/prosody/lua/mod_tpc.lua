-- mod_tpc: the TPC/1 policy of a partner endpoint, as a Prosody 0.12 module.
--
-- What it adds to a stock Prosody (with disco, pep, blocklist, register, offline, mam, vcard and
-- the http_file_share component), so that the server behaves like chatconform's reference partner
-- (src/partner/server/ in TypeScript):
--   * accounts: an account registered with a `phone` (XEP-0077 extra field) is a gatekeeper actor
--     (G), any other is a partner user (P). Registration classifies the number before the account
--     exists and refuses an ineligible one with not-allowed + <ineligible-region region='XX'/>, the
--     same whether or not the username is taken. Provisioned users come from the config.
--   * eligibility (brief §9, §10a) with the classifier in tpc_eligibility.lua and the data table
--     generated from the TypeScript classifier; number change (urn:x-tpc:1:account) → read-only.
--   * the policy between G and P, check by check in the order of src/partner/server/policy.ts:
--     opted-out users look like non-existent ones, messages from/to ineligible or read-only G are
--     refused, groups (groupchat, MUC invites and joins, MIX) and calls (Jingle, JMI) are refused as
--     unsupported, profile queries (vCard, vCard4, avatar, nick, last activity, version, time) get
--     service-unavailable, presence is dropped both ways, and plaintext is refused
--     (encryption-required). Blocking is mod_blocklist's: where a block applies, this module steps
--     aside and lets mod_blocklist bounce or drop.
--   * the server answers disco#info/#items on a user's bare JID for others (G cannot learn full
--     JIDs without presence), and forwards the test hooks (XEP-0050 commands urn:x-tpc:1:test:*)
--     addressed to a user's bare JID to that user's newest available resource.
--
-- Known-bad variants (chatconform's mutants) are named in tpc_faults: each switches one check off,
-- or (the blocking ones) bypasses one part of mod_blocklist. Each place is marked "fault".
--
-- Config (all written by chatconform's launcher, src/partner/prosody/config.ts):
--   tpc_eligibility_data = "/path/tpc_eligibility_data.lua"   -- generated, see eligibility-data.ts
--   tpc_faults = { "plaintext-accepted" }                     -- none for a compliant partner
--   tpc_partner_users = { { username = "reflector", password = "…" }, { username = "optout", password = "…", opted_out = true } }
--   tpc_gatekeeper_users = { { username = "tpc-test-ineligible", password = "…", phone = "+299 32 10 00" } }
--   tpc_policy_checks = { … }      -- the TypeScript server's check names: each must exist here
--   tpc_account_features = { … }   -- what a user's bare JID advertises to others
--   tpc_watch_stdin = true         -- shut down when stdin closes (the process that started us is gone)
--   tpc_remove_when_orphaned = "/tmp/chatconform-prosody-…"   -- and then remove the launcher's temp dir

local st = require "util.stanza";
local jid_split = require "util.jid".split;
local jid_bare = require "util.jid".bare;
local usermanager = require "core.usermanager";

local host = module.host;
local bare_sessions = prosody.bare_sessions;

local NS = {
	tpc = "urn:x-tpc:1",
	errors = "urn:x-tpc:1:errors",
	account = "urn:x-tpc:1:account",
	test_prefix = "urn:x-tpc:1:test:",
	omemo = "eu.siacs.conversations.axolotl",
	conference = "jabber:x:conference",
	muc = "http://jabber.org/protocol/muc",
	muc_user = "http://jabber.org/protocol/muc#user",
	jingle = "urn:xmpp:jingle:1",
	jingle_message = "urn:xmpp:jingle-message:0",
	pubsub = "http://jabber.org/protocol/pubsub",
	commands = "http://jabber.org/protocol/commands",
	disco_info = "http://jabber.org/protocol/disco#info",
	disco_items = "http://jabber.org/protocol/disco#items",
	register = "jabber:iq:register",
	xdata = "jabber:x:data",
};
local ENCRYPTED_NOTICE = "This message is end-to-end encrypted.";

local faults = module:get_option_set("tpc_faults", {});
local account_features = module:get_option_array("tpc_account_features", { NS.disco_info, NS.tpc, "urn:xmpp:receipts", NS.omemo .. ".devicelist+notify" });

local classifier;
do
	local data_file = module:get_option_string("tpc_eligibility_data");
	if not data_file then error("mod_tpc needs tpc_eligibility_data (the generated eligibility data file)"); end
	classifier = dofile(module:get_directory() .. "/tpc_eligibility.lua")(dofile(data_file));
end

module:add_feature(NS.tpc);
module:add_feature(NS.account);

---------------------------------------------------------------------------------------------------
-- Accounts: G or P, standing, kept in the "tpc_accounts" store

local store = module:open_store("tpc_accounts");
local records = {};

--- The TPC/1 record of a local account: { kind = "gatekeeper", phone, region, standing, reason }
--- or { kind = "partner", opted_out }. An account without one is a partner user.
local function record_of(username)
	local rec = records[username];
	if rec == nil then
		rec = store:get(username) or { kind = "partner" };
		records[username] = rec;
	end
	return rec;
end

local function set_record(username, rec)
	records[username] = rec;
	local ok, err = store:set(username, rec);
	if not ok then module:log("error", "cannot store the TPC/1 record of %s: %s", username, tostring(err)); end
end

module:hook_global("user-deleted", function(event)
	if event.host == host then records[event.username] = nil; store:set(event.username, nil); end
end);

local function is_gatekeeper(rec) return rec.kind == "gatekeeper"; end

---------------------------------------------------------------------------------------------------
-- Errors

--- An error reply to `stanza` with an RFC 6120 condition, a text and an application condition.
local function error_for(stanza, e)
	local extra;
	if e.app then extra = { tag = st.stanza(e.app.name, e.app.attrs) }; end
	return st.error_reply(stanza, { type = e.type, condition = e.condition, text = e.text, extra = extra });
end

local function app(name, attrs)
	local a = { xmlns = NS.errors };
	for k, v in pairs(attrs or {}) do a[k] = v; end
	return { name = name, attrs = a };
end

local SERVICE_UNAVAILABLE = { type = "cancel", condition = "service-unavailable" };

---------------------------------------------------------------------------------------------------
-- The policy between G and P (src/partner/server/policy.ts, in its order)

local function refuse(e) return { kind = "refuse", error = e }; end
local function drop(reason) return { kind = "drop", reason = reason }; end
local DEFER = { kind = "defer" };

--- Every child element, whatever its namespace (stanza:childtags() without arguments keeps only
--- the children in the parent's namespace).
local function child_tags(stanza) return stanza.tags; end

local function is_request(x) return x.stanza.name == "iq" and (x.stanza.attr.type == "get" or x.stanza.attr.type == "set"); end
local function is_message(x) return x.stanza.name == "message" and x.stanza.attr.type ~= "error"; end
local function is_mix(tag) return type(tag.attr.xmlns) == "string" and tag.attr.xmlns:sub(1, 13) == "urn:xmpp:mix:"; end

--- Messages and IQ requests get service-unavailable; everything else is dropped.
local function unavailable(x, reason)
	local t = x.stanza.attr.type;
	if x.stanza.name == "presence" or t == "error" or t == "result" then return drop(reason); end
	return refuse(SERVICE_UNAVAILABLE);
end

--- XEP-0191 block list of a local user, as mod_blocklist keeps it (its store, read at each use).
local blocklist_store = module:open_store("blocklist");
local function blocks(username, jid)
	local list = blocklist_store:get(username);
	if not list then return false; end
	local node, jhost, resource = jid_split(jid);
	if not jhost then return false; end
	local bare = node and (node .. "@" .. jhost) or jhost;
	return list[jid] or list[bare] or list[jhost] or (resource and list[jhost .. "/" .. resource]) or false;
end

local function the_gatekeeper(x)
	if is_gatekeeper(x.sender) then return x.sender; end
	return x.recipient;
end

local GROUPS_REFUSED = {
	type = "cancel", condition = "feature-not-implemented", app = app("unsupported", { feature = "groups" }),
	text = "Groups are not supported between gatekeeper and partner users in TPC/1.",
};
local CALLS_REFUSED = {
	type = "cancel", condition = "feature-not-implemented", app = app("unsupported", { feature = "calls" }),
	text = "Calls are not supported between gatekeeper and partner users in TPC/1.",
};

local VCARD_IQS = { { "vCard", "vcard-temp" }, { "vcard", "urn:ietf:params:xml:ns:vcard-4.0" } };
local ACTIVITY_IQS = { { "query", "jabber:iq:last" }, { "query", "jabber:iq:version" }, { "time", "urn:xmpp:time" } };
local VCARD_NODES = { ["urn:xmpp:vcard4"] = true };
local AVATAR_NODES = { ["urn:xmpp:avatar:metadata"] = true, ["urn:xmpp:avatar:data"] = true, ["http://jabber.org/protocol/nick"] = true };

--- A request whose payload is one of `iqs` or reads one of the PEP `nodes`.
local function queries_any(x, iqs, nodes)
	if not is_request(x) then return false; end
	local payload = x.stanza.tags[1];
	if not payload then return false; end
	for _, pair in ipairs(iqs) do
		if payload.name == pair[1] and payload.attr.xmlns == pair[2] then return true; end
	end
	if payload.name == "pubsub" and payload.attr.xmlns == NS.pubsub then
		for _, tag in ipairs(child_tags(payload)) do
			if type(tag.attr.node) == "string" and nodes[tag.attr.node] then return true; end
		end
	end
	return false;
end

local CHECKS = {
	{ name = "opted-out-hidden", fault = "optout-enumerable", check = function(x)
		if not (x.sender.opted_out or x.recipient.opted_out) then return nil; end
		return unavailable(x, "partner user has not opted in to third-party chats");
	end },
	-- The three blocking checks: where a block applies, mod_blocklist decides (bounce or drop).
	{ name = "blocked-by-recipient", fault = "block-ignored", check = function(x)
		if blocks(x.recipient_name, x.sender_jid) then return DEFER; end
	end },
	{ name = "blocked-by-sender", fault = "blocked-send-delivered", check = function(x)
		if blocks(x.sender_name, x.target) then return DEFER; end
	end },
	{ name = "blocked-receipts-by-sender", fault = "block-leaks-receipt", check = function() return nil; end },
	{ name = "eligible-region", fault = "no-eligibility-check-on-message", check = function(x)
		if not is_message(x) then return nil; end
		local g = the_gatekeeper(x);
		if g.standing ~= "ineligible" then return nil; end
		return refuse({
			type = "cancel", condition = "not-allowed", app = app("ineligible-region", { region = g.region or "ZZ" }),
			text = "The gatekeeper user's number is not in an eligible region" .. ((g.reason and g.reason ~= "") and (": " .. g.reason) or "") .. ".",
		});
	end },
	{ name = "read-only", fault = "read-only-not-enforced", check = function(x)
		if not is_message(x) then return nil; end
		if the_gatekeeper(x).standing ~= "read-only" then return nil; end
		return refuse({
			type = "cancel", condition = "not-allowed", app = app("read-only"),
			text = "This chat is read-only: the gatekeeper user's number moved outside the eligible region.",
		});
	end },
	{ name = "group-invites-refused", fault = "group-invite-accepted", check = function(x)
		local s = x.stanza;
		if s.name ~= "message" or s.attr.type == "error" then return nil; end
		local muc_user = s:get_child("x", NS.muc_user);
		if s:get_child("x", NS.conference) or (muc_user and muc_user:get_child("invite")) then return refuse(GROUPS_REFUSED); end
	end },
	{ name = "groups-refused", fault = "groups-accepted", check = function(x)
		local s = x.stanza;
		if s.attr.type == "error" then return nil; end
		if s.name == "message" then
			if s.attr.type == "groupchat" then return refuse(GROUPS_REFUSED); end
			for _, tag in ipairs(child_tags(s)) do if is_mix(tag) then return refuse(GROUPS_REFUSED); end end
			return nil;
		end
		if s.name == "iq" then
			if not is_request(x) then return nil; end
			for _, tag in ipairs(child_tags(s)) do if is_mix(tag) then return refuse(GROUPS_REFUSED); end end
			return nil;
		end
		-- A MUC join (presence with <x xmlns='…muc'/>) from G to P; presence the other way is only dropped.
		if s.name == "presence" and is_gatekeeper(x.sender) and s:get_child("x", NS.muc) and s.attr.type == nil then
			return refuse(GROUPS_REFUSED);
		end
	end },
	{ name = "calls-refused", fault = "jingle-accepted", check = function(x)
		if is_message(x) then
			for _, tag in ipairs(child_tags(x.stanza)) do
				if tag.attr.xmlns == NS.jingle_message then return refuse(CALLS_REFUSED); end
			end
		end
		if is_request(x) and x.stanza:get_child("jingle", NS.jingle) then return refuse(CALLS_REFUSED); end
	end },
	{ name = "vcard-queries-refused", fault = "vcard-served", check = function(x)
		if queries_any(x, VCARD_IQS, VCARD_NODES) then return refuse(SERVICE_UNAVAILABLE); end
	end },
	{ name = "avatar-queries-refused", fault = "avatar-served", check = function(x)
		if queries_any(x, {}, AVATAR_NODES) then return refuse(SERVICE_UNAVAILABLE); end
	end },
	{ name = "activity-queries-refused", fault = "activity-served", check = function(x)
		if queries_any(x, ACTIVITY_IQS, {}) then return refuse(SERVICE_UNAVAILABLE); end
	end },
	{ name = "no-presence-across", fault = "presence-leak", check = function(x)
		if x.stanza.name == "presence" then return drop("no presence crosses between gatekeeper and partner users"); end
	end },
	{ name = "encryption-required", fault = "plaintext-accepted", check = function(x)
		if not is_message(x) then return nil; end
		local bodies = {};
		for _, tag in ipairs(child_tags(x.stanza)) do
			if tag.name == "body" then bodies[#bodies + 1] = tag; end
		end
		if #bodies == 0 then return nil; end
		if not x.stanza:get_child("encrypted", NS.omemo) then
			return refuse({
				type = "cancel", condition = "not-acceptable", app = app("encryption-required"),
				text = "Plaintext is not accepted: a TPC/1 message carries its content in an OMEMO <encrypted/> element.",
			});
		end
		for _, body in ipairs(bodies) do
			if body:get_text() ~= ENCRYPTED_NOTICE then
				return refuse({
					type = "cancel", condition = "not-acceptable", app = app("encryption-required"),
					text = ("A plaintext <body> beside the OMEMO <encrypted/> payload is refused: the body may only carry the notice \"%s\"."):format(ENCRYPTED_NOTICE),
				});
			end
		end
	end },
};

-- The launcher passes the TypeScript server's check list; every check there must exist here.
for _, expected in ipairs(module:get_option_array("tpc_policy_checks", {})) do
	local found = false;
	for _, c in ipairs(CHECKS) do if c.name == expected then found = true; end end
	if not found then error(("mod_tpc has no policy check %q (src/partner/server/policy.ts has one)"):format(expected)); end
end

local function answer(origin, stanza, outcome, check)
	local t = stanza.attr.type;
	if outcome.kind == "refuse" and t ~= "error" and t ~= "result" then
		module:log("debug", "refuse %s %s → %s (%s): %s", stanza.name, tostring(stanza.attr.from), tostring(stanza.attr.to), check, outcome.error.condition);
		origin.send(error_for(stanza, outcome.error));
	else
		module:log("debug", "drop %s %s → %s (%s)", stanza.name, tostring(stanza.attr.from), tostring(stanza.attr.to), check);
	end
	return true;
end

--- pre-message/*, pre-presence/*, pre-iq/*: a stanza from a local user to another local user.
local function police(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "c2s" or origin.host ~= host or not origin.username then return nil; end
	local to = stanza.attr.to;
	if not to then return nil; end -- to the sender's own account
	local node, to_host = jid_split(to);
	if to_host ~= host or not node or node == origin.username then return nil; end
	if not usermanager.user_exists(node, host) then
		-- Like src/partner/server/router.ts for an unknown account (and so for an opted-out one too).
		local t = stanza.attr.type;
		if stanza.name == "presence" or t == "error" or t == "result" then return true; end
		if stanza.name == "message" or t == "get" or t == "set" then
			origin.send(error_for(stanza, SERVICE_UNAVAILABLE));
		end
		return true;
	end
	local x = {
		stanza = stanza,
		sender = record_of(origin.username), sender_name = origin.username, sender_jid = stanza.attr.from or origin.full_jid,
		recipient = record_of(node), recipient_name = node, target = to,
	};
	-- Only exchanges between a gatekeeper actor and a partner user are TPC/1's business.
	if is_gatekeeper(x.sender) == is_gatekeeper(x.recipient) then return nil; end
	for _, c in ipairs(CHECKS) do
		if not faults:contains(c.fault) then
			local outcome = c.check(x);
			if outcome == DEFER then return nil; end
			if outcome then return answer(origin, stanza, outcome, c.name); end
		end
	end
	return nil;
end

for _, name in ipairs({ "message", "presence", "iq" }) do
	for _, kind in ipairs({ "bare", "full" }) do
		-- Before mod_blocklist's outgoing checks (priority 100): the opted-out check comes first.
		module:hook(("pre-%s/%s"):format(name, kind), police, 200);
	end
end

-- Blocking faults. mod_blocklist checks a stanza at priority 100: incoming ones (message/*,
-- presence/*, iq/*) by their sender, the blocker's own (pre-message/* …) by their recipient. A
-- fault hides that JID from it, for the stanzas the fault concerns, just for that check (101) and
-- puts it back right after (99); nothing else sees a difference.
local function hide_from_blocklist(events, attr, concerns)
	local hidden = setmetatable({}, { __mode = "k" });
	for _, name in ipairs(events) do
		module:hook(name, function(event)
			local stanza = event.stanza;
			if stanza.attr[attr] and concerns(stanza) then hidden[stanza], stanza.attr[attr] = stanza.attr[attr], nil; end
		end, 101);
		module:hook(name, function(event)
			local stanza = event.stanza;
			if hidden[stanza] then stanza.attr[attr], hidden[stanza] = hidden[stanza], nil; end
		end, 99);
	end
end

local function events_for(prefix)
	local out = {};
	for _, name in ipairs({ "message", "presence", "iq" }) do
		for _, kind in ipairs({ "bare", "full" }) do out[#out + 1] = ("%s%s/%s"):format(prefix, name, kind); end
	end
	return out;
end

--- A message without content: a receipt, a chat marker or a chat state (no <body/>, no OMEMO).
local function without_content(stanza)
	return stanza.name == "message" and stanza.attr.type ~= "error" and not stanza:get_child("body") and not stanza:get_child("encrypted", NS.omemo);
end
local function always() return true; end

-- fault block-ignored: a user's block list is never applied to what others send it.
if faults:contains("block-ignored") then hide_from_blocklist(events_for(""), "from", always); end
-- fault blocked-send-delivered: the blocker's own messages with content and IQ requests go through.
if faults:contains("blocked-send-delivered") then
	hide_from_blocklist(events_for("pre-"), "to", function(stanza)
		if stanza.name == "iq" then return stanza.attr.type == "get" or stanza.attr.type == "set"; end
		return stanza.name == "message" and not without_content(stanza) and stanza.attr.type ~= "error";
	end);
end
-- fault block-leaks-receipt: the blocker's receipts, chat markers and chat states go through.
if faults:contains("block-leaks-receipt") then hide_from_blocklist(events_for("pre-"), "to", without_content); end

local BLOCKING = "urn:xmpp:blocking";
local jid_prep = require "util.jid".prep;

--- Block or unblock JIDs on a local user's list as if the user had sent the command: through
--- mod_blocklist's own handler, so that its cache, its store and the pushes to the user's
--- resources stay right. Only while the user is online (mod_blocklist pushes to its sessions).
local function edit_blocklist_as(username, action, jids)
	if #jids == 0 or not (prosody.hosts[host].sessions or {})[username] then return false; end
	local iq = st.iq({ type = "set", id = "tpc-" .. action, from = username .. "@" .. host }):tag(action, { xmlns = BLOCKING });
	for _, j in ipairs(jids) do iq:tag("item", { jid = j }):up(); end
	iq:up();
	local origin = { type = "c2s", username = username, host = host, full_jid = username .. "@" .. host .. "/chatconform", send = function() end, log = module._log };
	module:fire_event("iq-set/self/" .. BLOCKING .. ":" .. action, { origin = origin, stanza = iq });
	return true;
end

local function block_items(action_element)
	local out = {};
	for _, item in ipairs(action_element.tags) do
		if item.name == "item" and item.attr.jid then out[#out + 1] = jid_prep(item.attr.jid) or item.attr.jid; end
	end
	return out;
end

-- fault gatekeeper-block-imported: when a gatekeeper user blocks a partner user, the partner user
-- blocks the gatekeeper user back, and keeps doing so after the gatekeeper user unblocks.
if faults:contains("gatekeeper-block-imported") then
	module:hook("iq-set/self/" .. BLOCKING .. ":block", function(event)
		local origin = event.origin;
		if not is_gatekeeper(record_of(origin.username)) then return nil; end
		local blocker = origin.username .. "@" .. host;
		for _, j in ipairs(block_items(event.stanza.tags[1])) do
			local node, jhost, resource = jid_split(j);
			if node and jhost == host and not resource and usermanager.user_exists(node, host) and not is_gatekeeper(record_of(node)) and not blocks(node, blocker) then
				edit_blocklist_as(node, "block", { blocker });
			end
		end
		return nil; -- mod_blocklist (priority -1) handles the gatekeeper user's own block
	end, 2);
end

-- fault block-by-device-not-jid: blocking a user's bare JID blocks the full JIDs of the resources
-- it has bound at that moment instead; unblocking the user lifts the blocks of its devices too.
if faults:contains("block-by-device-not-jid") then
	local function rewrite(event, expand)
		local action = event.stanza.tags[1];
		local items = {};
		for _, j in ipairs(block_items(action)) do
			for _, e in ipairs(expand(j, event.origin.username)) do items[#items + 1] = e; end
		end
		if #items == 0 then return nil; end -- never turn it into "unblock everyone"
		for i = #action.tags, 1, -1 do table.remove(action.tags, i); end
		for i = #action, 1, -1 do table.remove(action, i); end
		for _, j in ipairs(items) do action:tag("item", { jid = j }):up(); end
		return nil;
	end
	module:hook("iq-set/self/" .. BLOCKING .. ":block", function(event)
		return rewrite(event, function(j)
			local node, jhost, resource = jid_split(j);
			local user = node and jhost == host and not resource and bare_sessions[j];
			if not user then return { j }; end
			local devices = {};
			for _, session in pairs(user.sessions) do devices[#devices + 1] = session.full_jid; end
			return #devices > 0 and devices or { j };
		end);
	end, 1);
	module:hook("iq-set/self/" .. BLOCKING .. ":unblock", function(event)
		return rewrite(event, function(j, username)
			local out = {};
			for item in pairs(blocklist_store:get(username) or {}) do
				if item and (item == j or jid_bare(item) == j) then out[#out + 1] = item; end
			end
			return out;
		end);
	end, 1);
end

-- fault block-lost-on-reconnect: a block item lives with the session that set it, like an XEP-0016
-- active list, and lapses when that session ends.
if faults:contains("block-lost-on-reconnect") then
	local set_by = setmetatable({}, { __mode = "k" }); -- session → { jid, … }
	module:hook("iq-set/self/" .. BLOCKING .. ":block", function(event)
		local items = set_by[event.origin] or {};
		for _, j in ipairs(block_items(event.stanza.tags[1])) do items[#items + 1] = j; end
		set_by[event.origin] = items;
		return nil;
	end, 1);
	module:hook("resource-unbind", function(event)
		local session = event.session;
		local items = set_by[session];
		if not items or not session.username then return; end
		set_by[session] = nil;
		if not edit_blocklist_as(session.username, "unblock", items) then
			-- Nobody left online to push to: take the items out of the stored list.
			local list = blocklist_store:get(session.username);
			if list then
				for _, j in ipairs(items) do list[j] = nil; end
				blocklist_store:set(session.username, list);
			end
		end
	end);
end

---------------------------------------------------------------------------------------------------
-- What the server answers for a user's bare JID, and what it forwards to the user's client

--- The user's newest available resource (a reconnecting client's new session wins).
local function newest_available(username)
	local user = bare_sessions[username .. "@" .. host];
	if not user then return nil; end
	local best;
	for _, session in pairs(user.sessions) do
		if session.presence and (not best or (session.conntime or 0) >= (best.conntime or 0)) then best = session; end
	end
	return best;
end

local function forward_to_client(event)
	local origin, stanza = event.origin, event.stanza;
	local username = jid_split(stanza.attr.to);
	local target = username and newest_available(username);
	if not target then
		origin.send(error_for(stanza, SERVICE_UNAVAILABLE));
		return true;
	end
	target.send(stanza);
	return true;
end

-- Test hooks (XEP-0050 nodes urn:x-tpc:1:test:*) addressed to a bare JID go to the user's client.
module:hook("iq/bare/" .. NS.commands .. ":command", function(event)
	local node = event.stanza.tags[1].attr.node or "";
	if node:sub(1, #NS.test_prefix) ~= NS.test_prefix then return nil; end
	return forward_to_client(event);
end, 10);

-- fault jingle-accepted: calls pass the policy, and the server hands them to the user's device.
if faults:contains("jingle-accepted") then
	module:hook("iq/bare/" .. NS.jingle .. ":jingle", forward_to_client, 10);
end

--- disco#info and #items on another user's bare JID, answered by the server (XEP-0030, RFC 6121 §8.5.1).
module:hook("iq-get/bare/" .. NS.disco_info .. ":query", function(event)
	local origin, stanza = event.origin, event.stanza;
	if not stanza.attr.to then return nil; end -- the user's own account: mod_disco
	if stanza.tags[1].attr.node then
		origin.send(st.error_reply(stanza, "cancel", "item-not-found"));
		return true;
	end
	local reply = st.reply(stanza):tag("query", { xmlns = NS.disco_info })
		:tag("identity", { category = "account", type = "registered" }):up()
		:tag("identity", { category = "pubsub", type = "pep" }):up();
	for _, var in ipairs(account_features) do reply:tag("feature", { var = var }):up(); end
	if faults:contains("disco-advertises-muc") then reply:tag("feature", { var = NS.muc }):up(); end -- fault
	origin.send(reply);
	return true;
end, 10);

module:hook("iq-get/bare/" .. NS.disco_items .. ":query", function(event)
	local origin, stanza = event.origin, event.stanza;
	if not stanza.attr.to then return nil; end
	if stanza.tags[1].attr.node then
		origin.send(st.error_reply(stanza, "cancel", "item-not-found"));
		return true;
	end
	origin.send(st.reply(stanza):tag("query", { xmlns = NS.disco_items }));
	return true;
end, 10);

---------------------------------------------------------------------------------------------------
-- Registration (XEP-0077 with the phone field) and number change

local function registration_field(query, name)
	local form = query:get_child("x", NS.xdata);
	if form then
		for field in form:childtags("field") do
			if field.attr.var == name then return field:get_child_text("value"); end
		end
		return nil;
	end
	return query:get_child_text(name);
end

local function trim(s) return (s or ""):match("^%s*(.-)%s*$"); end

local registering = {};
-- As mod_register_ibr reads it: where TLS is required, it refuses registration before TLS itself.
local registration_needs_tls = module:get_option_boolean("c2s_require_encryption", module:get_option_boolean("require_encryption", true));

-- Before mod_register_ibr (priority 0): the eligibility decision comes before the account exists,
-- and before the username is looked up, so an ineligible number gets the same error either way.
module:hook("stanza/iq/" .. NS.register .. ":query", function(event)
	local session, stanza = event.origin, event.stanza;
	if session.type ~= "c2s_unauthed" or stanza.attr.type ~= "set" then return nil; end
	if registration_needs_tls and not session.secure then return nil; end
	local query = stanza.tags[1];
	if query:get_child("remove") then return nil; end
	local username, password = trim(registration_field(query, "username")), registration_field(query, "password");
	local phone = trim(registration_field(query, "phone"));
	if username == "" or not password or password == "" or phone == "" then return nil; end -- mod_register_ibr says what is missing
	local prepped = require "util.encodings".stringprep.nodeprep(username, true);
	if faults:contains("enumeration-leak") and prepped and usermanager.user_exists(prepped, host) then
		return nil; -- fault: existence is revealed (conflict) before eligibility is checked
	end
	local c = classifier.classify(phone);
	if not c.eligible then
		session.send(error_for(stanza, {
			type = "cancel", condition = "not-allowed", app = app("ineligible-region", { region = c.region }),
			text = (c.reason and c.reason ~= "") and c.reason or ("numbers in region %s are not eligible"):format(c.region),
		}));
		return true;
	end
	if prepped then registering[prepped] = c; end
	return nil;
end, 10);

module:hook("user-registered", function(event)
	if event.host ~= host then return; end
	local c = registering[event.username];
	registering[event.username] = nil;
	if not c then return; end
	set_record(event.username, { kind = "gatekeeper", phone = c.e164, region = c.region, standing = "eligible", reason = c.reason });
	module:log("info", "registered gatekeeper actor %s@%s (%s, %s)", event.username, host, c.e164, c.region);
end);

local function number_change(event)
	local origin, stanza = event.origin, event.stanza;
	if stanza.attr.type ~= "set" then
		origin.send(error_for(stanza, { type = "modify", condition = "bad-request", text = "number-change is an IQ set" }));
		return true;
	end
	local rec = record_of(origin.username);
	if not is_gatekeeper(rec) then
		origin.send(error_for(stanza, { type = "cancel", condition = "not-allowed", text = "only gatekeeper actors have a phone number" }));
		return true;
	end
	local number = trim(stanza.tags[1].attr.number);
	if number == "" then
		origin.send(error_for(stanza, { type = "modify", condition = "bad-request", text = "the number attribute is missing" }));
		return true;
	end
	local c = classifier.classify(number);
	if not c.e164 then
		origin.send(error_for(stanza, { type = "modify", condition = "bad-request", text = (c.reason ~= "" and c.reason) or "the number does not parse" }));
		return true;
	end
	local status = c.eligible and "eligible" or "read-only";
	set_record(origin.username, { kind = "gatekeeper", phone = c.e164, region = c.region, standing = status, reason = c.reason });
	module:log("info", "number change of %s: %s (%s) → %s", origin.username, c.e164, c.region, status);
	origin.send(st.reply(stanza):tag("number-change", { xmlns = NS.account, number = c.e164, region = c.region, status = status }));
	return true;
end
module:hook("iq/host/" .. NS.account .. ":number-change", number_change);
module:hook("iq/self/" .. NS.account .. ":number-change", number_change);

---------------------------------------------------------------------------------------------------
-- Provisioned accounts, readiness, and the end of the process that started us

local function provision()
	local partners, gatekeepers = 0, 0;
	for _, user in ipairs(module:get_option_array("tpc_partner_users", {})) do
		if not usermanager.user_exists(user.username, host) then
			assert(usermanager.create_user(user.username, user.password, host));
		end
		set_record(user.username, { kind = "partner", opted_out = user.opted_out == true });
		partners = partners + 1;
	end
	for _, user in ipairs(module:get_option_array("tpc_gatekeeper_users", {})) do
		if not usermanager.user_exists(user.username, host) then
			assert(usermanager.create_user(user.username, user.password, host));
		end
		local c = classifier.classify(user.phone);
		set_record(user.username, {
			kind = "gatekeeper", phone = c.e164 or user.phone, region = c.region,
			standing = c.eligible and "eligible" or "ineligible", reason = c.reason,
		});
		gatekeepers = gatekeepers + 1;
	end
	-- The launcher waits for this line.
	module:log("info", "chatconform-ready %s: %d partner user(s), %d gatekeeper user(s), faults: %s", host, partners, gatekeepers, tostring(faults));
end

module:hook_global("server-started", provision);

--- Remove a directory tree (the launcher's temp dir), when the launcher is gone and cannot.
local function remove_tree(path)
	local lfs = require "lfs";
	local attr = lfs.symlinkattributes(path);
	if not attr then return; end
	if attr.mode == "directory" then
		for entry in lfs.dir(path) do
			if entry ~= "." and entry ~= ".." then remove_tree(path .. "/" .. entry); end
		end
		lfs.rmdir(path);
	else
		os.remove(path);
	end
end

if module:get_option_boolean("tpc_watch_stdin", false) then
	local orphan_dir = module:get_option_string("tpc_remove_when_orphaned");
	local orphaned = false;
	module:hook_global("server-stopped", function()
		if orphaned and orphan_dir then remove_tree(orphan_dir); end
	end);
	-- The launcher keeps our stdin open as a pipe: end of file means it is gone (even if it was
	-- killed and could not stop us), so stop rather than outlive it.
	local watch;
	watch = require "net.server".watchfd(0, function()
		local chunk = io.stdin:read(1);
		if chunk then return; end
		watch:close();
		orphaned = true;
		module:log("warn", "stdin closed: the process that started this server is gone; shutting down");
		-- As mod_posix does for SIGTERM: shutdown runs in Prosody's main thread.
		prosody.main_thread:run(function() prosody.shutdown("the process that started this server is gone"); end);
	end);
end

module:log("info", "TPC/1 policy on %s, eligibility data %s", host, module:get_option_string("tpc_eligibility_data"));
