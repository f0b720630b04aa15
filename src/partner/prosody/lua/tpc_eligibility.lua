-- TPC/1 eligibility (brief §9, §10a) for the Prosody-backed reference partner: input → E.164 →
-- region → policy decision, the same steps as src/eligibility/classify.ts.
--
-- This file holds only the algorithm. Every fact it uses comes from a data table generated at
-- launch from the TypeScript side (src/partner/prosody/eligibility-data.ts): the character classes
-- of the normalisation (measured with classify.ts's own normaliseNumber), libphonenumber-js's
-- numbering plans (its regular expressions, lengths and national prefixes, verbatim), the territory
-- rules of territories.yaml, and every decision text. There is no second copy of the map.
--
-- The libphonenumber part follows libphonenumber-js 1.13 for the one input shape the classifier
-- gives it ("+" and digits): parse (calling code, national prefix, region of a shared calling code),
-- validatePhoneNumberLength and isValid. Its regular expressions use a small subset (digits, \d,
-- classes, groups, alternation, ?, {n}, {n,m}), matched here by a backtracking matcher with the
-- same preference order as JavaScript's.
--
-- Use: local classifier = dofile("tpc_eligibility.lua")(dofile("tpc_eligibility_data.lua"))
--      classifier.classify("+47 79 12 34 56") --> { eligible, region, e164 (or nil), reason, rule, kind }

local M = {}

---------------------------------------------------------------------------------------------------
-- Regular expressions (the subset libphonenumber's metadata uses)

local regex_cache = {}

local function parse_regex(source)
	local pos, ncap = 1, 0
	local parse_alternatives

	local function class_set()
		-- after '[': digits and ranges; a leading ^ negates
		local set, negate = {}, false
		if source:sub(pos, pos) == "^" then negate = true; pos = pos + 1 end
		while true do
			local c = source:sub(pos, pos)
			if c == "" then error("unterminated class in " .. source) end
			if c == "]" then pos = pos + 1; break end
			local lo
			if c == "\\" then
				local e = source:sub(pos + 1, pos + 1)
				pos = pos + 2
				if e == "d" then
					for b = 48, 57 do set[b] = true end
				else
					lo = e:byte()
				end
			else
				lo = c:byte(); pos = pos + 1
			end
			if lo then
				if source:sub(pos, pos) == "-" and source:sub(pos + 1, pos + 1) ~= "]" then
					local hi = source:byte(pos + 1); pos = pos + 2
					for b = lo, hi do set[b] = true end
				else
					set[lo] = true
				end
			end
		end
		if negate then
			local inverse = {}
			for b = 0, 255 do inverse[b] = not set[b] or nil end
			set = inverse
		end
		return { kind = "set", set = set }
	end

	local function atom()
		local c = source:sub(pos, pos)
		if c == "(" then
			local capture
			if source:sub(pos + 1, pos + 2) == "?:" then
				pos = pos + 3
			else
				pos = pos + 1
				ncap = ncap + 1
				capture = ncap
			end
			local alts = parse_alternatives()
			if source:sub(pos, pos) ~= ")" then error("unbalanced group in " .. source) end
			pos = pos + 1
			return { kind = "group", alts = alts, capture = capture }
		elseif c == "[" then
			pos = pos + 1
			return class_set()
		elseif c == "\\" then
			local e = source:sub(pos + 1, pos + 1)
			pos = pos + 2
			if e == "d" then
				local set = {}
				for b = 48, 57 do set[b] = true end
				return { kind = "set", set = set }
			end
			return { kind = "set", set = { [e:byte()] = true } }
		elseif c == "." then
			pos = pos + 1
			local set = {}
			for b = 0, 255 do if b ~= 10 then set[b] = true end end
			return { kind = "set", set = set }
		else
			pos = pos + 1
			return { kind = "set", set = { [c:byte()] = true } }
		end
	end

	local function quantifier()
		local c = source:sub(pos, pos)
		if c == "?" then pos = pos + 1; return 0, 1 end
		if c == "*" then pos = pos + 1; return 0, math.huge end
		if c == "+" then pos = pos + 1; return 1, math.huge end
		if c == "{" then
			local a, b, close = source:match("^{(%d+)(,?%d*)}()", pos)
			if a then
				pos = close
				local min = tonumber(a)
				local max = min
				if b == "," then max = math.huge elseif b ~= "" then max = tonumber(b:sub(2)) end
				return min, max
			end
		end
		return 1, 1
	end

	local function sequence()
		local items = {}
		while pos <= #source do
			local c = source:sub(pos, pos)
			if c == "|" or c == ")" then break end
			local a = atom()
			local min, max = quantifier()
			items[#items + 1] = { atom = a, min = min, max = max }
		end
		return items
	end

	function parse_alternatives()
		local alts = { sequence() }
		while source:sub(pos, pos) == "|" do
			pos = pos + 1
			alts[#alts + 1] = sequence()
		end
		return alts
	end

	local alts = parse_alternatives()
	if pos <= #source then error("unexpected ')' in " .. source) end
	return { alts = alts, ncap = ncap }
end

local function compile(source)
	local re = regex_cache[source]
	if not re then
		re = parse_regex(source)
		regex_cache[source] = re
	end
	return re
end

local match_alts

-- Match seq[i..] at pos; k(pos, caps) is the continuation. Captures are copied on write, so a
-- failed branch never leaks its captures.
local function match_seq(seq, i, s, pos, caps, k)
	local item = seq[i]
	if not item then return k(pos, caps) end
	local atom, min, max = item.atom, item.min, item.max
	local function rep(count, p, c)
		if count < max then
			local r
			if atom.kind == "set" then
				local b = s:byte(p)
				if b and atom.set[b] then r = rep(count + 1, p + 1, c) end
			else
				r = match_alts(atom, s, p, c, function(p2, c2)
					if p2 == p and count >= min then return nil end -- an empty iteration ends the loop
					return rep(count + 1, p2, c2)
				end)
			end
			if r then return r end
		end
		if count >= min then return match_seq(seq, i + 1, s, p, c, k) end
		return nil
	end
	return rep(0, pos, caps)
end

function match_alts(group, s, pos, caps, k)
	for _, seq in ipairs(group.alts) do
		local r = match_seq(seq, 1, s, pos, caps, function(p2, c2)
			if group.capture then
				local copy = {}
				for key, v in pairs(c2) do copy[key] = v end
				copy[group.capture] = s:sub(pos, p2 - 1)
				c2 = copy
			end
			return k(p2, c2)
		end)
		if r then return r end
	end
	return nil
end

--- The whole of `s` matches `source` (libphonenumber's matchesEntirely).
local function matches_entirely(s, source)
	if not source then return false end
	local re = compile(source)
	return match_alts(re, s or "", 1, {}, function(p) return p == #(s or "") + 1 or nil end) ~= nil
end

--- `source` matches at the start of `s` (string.search(...) === 0 for a pattern without anchors).
local function matches_at_start(s, source)
	local re = compile(source)
	return match_alts(re, s, 1, {}, function() return true end) ~= nil
end

--- The first match of ^(?:source) in s: the end position and the captures, or nil.
local function exec_at_start(s, source)
	local re = compile(source)
	local finish, captures
	match_alts(re, s, 1, {}, function(p, c) finish, captures = p, c; return true end)
	if not finish then return nil end
	return finish, captures, re.ncap
end

M.matches_entirely = matches_entirely

---------------------------------------------------------------------------------------------------
-- libphonenumber-js, for "+digits" input

local MIN_LENGTH_FOR_NSN, MAX_LENGTH_FOR_NSN, MAX_LENGTH_COUNTRY_CODE = 2, 17, 3
local NON_FIXED_LINE_TYPES = { "MOBILE", "PREMIUM_RATE", "TOLL_FREE", "SHARED_COST", "VOIP", "PERSONAL_NUMBER", "PAGER", "UAN", "VOICEMAIL" }

local function contains(list, value)
	if not list then return false end
	for _, v in ipairs(list) do if v == value then return true end end
	return false
end

local function new_phonelib(data)
	local plans, calling_codes, nongeo = data.plans, data.calling_codes, data.nongeo

	--- The numbering plan of a region code or a calling code (main region, or non-geographic).
	local function plan_of(country_or_code)
		if plans[country_or_code] and not country_or_code:match("^%d") then return plans[country_or_code] end
		local countries = calling_codes[country_or_code]
		if countries then return plans[countries[1]] end
		if nongeo[country_or_code] then return plans["+" .. country_or_code] end
		return nil
	end

	local function type_equal(nn, plan, name)
		local t = plan.types and plan.types[name]
		if not t or not t.pattern or t.pattern == "" then return false end
		if t.lengths and not contains(t.lengths, #nn) then return false end
		return matches_entirely(nn, t.pattern)
	end

	--- getNumberType(...) !== undefined
	local function has_number_type(nn, plan)
		if not plan then return false end
		if not matches_entirely(nn, plan.nnp) then return false end
		if type_equal(nn, plan, "FIXED_LINE") then return true end
		for _, name in ipairs(NON_FIXED_LINE_TYPES) do
			if type_equal(nn, plan, name) then return true end
		end
		return false
	end

	local function country_by_calling_code(cc, nn)
		local countries = calling_codes[cc]
		if not countries then return nil end
		if #countries == 1 then return countries[1] end
		for _, country in ipairs(countries) do
			local plan = plans[country]
			if plan.leading then
				if nn and nn ~= "" and matches_at_start(nn, plan.leading) then return country end
			elseif has_number_type(nn, plan) then
				return country
			end
		end
		return nil
	end

	--- checkNumberLength(nn, undefined, plan)
	local function check_length(nn, plan)
		local lengths = plan and plan.lengths
		if not lengths or #lengths == 0 then return "IS_POSSIBLE" end
		local n = #nn
		if lengths[1] == n then return "IS_POSSIBLE" end
		if lengths[1] > n then return "TOO_SHORT" end
		if lengths[#lengths] < n then return "TOO_LONG" end
		for i = 2, #lengths do if lengths[i] == n then return "IS_POSSIBLE" end end
		return "INVALID_LENGTH"
	end

	--- extractNationalNumber(number, undefined, metadata with the calling code's plan selected)
	local function extract_national_number(number, cc, plan)
		local nn = number
		if number ~= "" and plan.npfp then
			local finish, captures, ncap = exec_at_start(number, plan.npfp)
			if finish then
				local last = ncap > 0 and captures[ncap] or nil
				local has_captured = last ~= nil and last ~= ""
				if plan.nptr and has_captured then
					local replaced = plan.nptr:gsub("%$(%d)", function(d) return captures[tonumber(d)] or "" end)
					nn = replaced .. number:sub(finish)
				else
					nn = number:sub(finish)
				end
			end
		end
		if nn ~= number then
			-- shouldHaveExtractedNationalPrefix
			if matches_entirely(number, plan.nnp) and not matches_entirely(nn, plan.nnp) then return number end
			if plan.lengths and #plan.lengths > 0 then
				local country = country_by_calling_code(cc, nn)
				local check = check_length(nn, country and plans[country] or plan)
				if check == "TOO_SHORT" or check == "INVALID_LENGTH" then return number end
			end
		end
		return nn
	end

	--- parsePhoneNumberWithError("+digits"): { cc, nn, country } or nil, error
	local function parse(e164)
		local digits = e164:sub(2)
		if #digits < 3 then return nil, "TOO_SHORT" end -- not a viable number: "+" and one or two digits
		if digits:sub(1, 1) == "0" then return nil, "INVALID_COUNTRY" end
		local cc, rest
		for i = 1, math.min(MAX_LENGTH_COUNTRY_CODE, #digits) do
			local candidate = digits:sub(1, i)
			if calling_codes[candidate] or nongeo[candidate] then
				cc, rest = candidate, digits:sub(i + 1)
				break
			end
		end
		if not cc then return nil, "INVALID_COUNTRY" end
		if rest == "" then return nil, "TOO_SHORT" end
		local plan = plan_of(cc)
		local nn = extract_national_number(rest, cc, plan)
		local country = country_by_calling_code(cc, nn)
		if nn == "" or #nn < MIN_LENGTH_FOR_NSN then return nil, "TOO_SHORT" end
		if #nn > MAX_LENGTH_FOR_NSN then return nil, "TOO_LONG" end
		return { cc = cc, nn = nn, country = country, number = "+" .. cc .. nn }
	end

	--- validatePhoneNumberLength(e164): nil when possible, else the problem
	local function validate_length(e164)
		local phone, err = parse(e164)
		if not phone then return err end
		local result = check_length(phone.nn, plan_of(phone.country or phone.cc))
		if result ~= "IS_POSSIBLE" then return result end
		return nil
	end

	local function is_valid(phone)
		local plan = plan_of(phone.country or phone.cc)
		if not plan then return false end
		if plan.has_types then return has_number_type(phone.nn, plan) end
		return matches_entirely(phone.nn, plan.nnp)
	end

	return { parse = parse, validate_length = validate_length, is_valid = is_valid }
end

---------------------------------------------------------------------------------------------------
-- Normalisation (classify.ts normaliseNumber)

local function in_ranges(ranges, cp)
	local lo, hi = 1, #ranges
	while lo <= hi do
		local mid = (lo + hi) // 2
		local r = ranges[mid]
		if cp < r[1] then hi = mid - 1
		elseif cp > r[2] then lo = mid + 1
		else return true end
	end
	return false
end

local function codepoints(s)
	local list = {}
	local ok = pcall(function()
		for _, cp in utf8.codes(s) do list[#list + 1] = cp end
	end)
	if not ok then return nil end
	return list
end

local function json_char(cp)
	if cp == 0x22 then return '"\\""' end
	if cp == 0x5c then return '"\\\\"' end
	local short = { [8] = "\\b", [9] = "\\t", [10] = "\\n", [12] = "\\f", [13] = "\\r" }
	if short[cp] then return '"' .. short[cp] .. '"' end
	if cp < 0x20 then return ('"\\u%04x"'):format(cp) end
	return '"' .. utf8.char(cp) .. '"'
end

local function list_chars(cps)
	local seen, out = {}, {}
	for _, cp in ipairs(cps) do
		if not seen[cp] then
			seen[cp] = true
			out[#out + 1] = json_char(cp)
			if #out == 5 then break end
		end
	end
	return table.concat(out, ", ")
end

local function new_normaliser(data)
	local chars = data.chars
	local function is_trim(cp) return in_ranges(chars.trim, cp) end
	local function is_letter(cp) return in_ranges(chars.letters, cp) end
	local function is_separator(cp) return in_ranges(chars.separators, cp) end

	local function trim(cps)
		local first, last = 1, #cps
		while first <= last and is_trim(cps[first]) do first = first + 1 end
		while last >= first and is_trim(cps[last]) do last = last - 1 end
		local out = {}
		for i = first, last do out[#out + 1] = cps[i] end
		return out
	end

	local function fail(kind, reason) return { ok = false, kind = kind, reason = reason } end

	local function normalise(input)
		local cps = type(input) == "string" and codepoints(input) or {}
		if type(input) == "string" and not cps then
			return fail("invalid-characters", "the number is not valid UTF-8")
		end
		local text = trim(cps)
		if #text == 0 then return fail("empty", "no number was given") end
		local units = 0
		for _, cp in ipairs(text) do units = units + (cp >= 0x10000 and 2 or 1) end
		if units > data.max_input_length then
			return fail("too-long", ("the input is %d characters long, longer than any phone number"):format(units))
		end
		local letters = {}
		for _, cp in ipairs(text) do if is_letter(cp) then letters[#letters + 1] = cp end end
		if #letters > 0 then
			return fail("letters", ("the number contains letters (%s); only digits, \"+\", spaces, dashes, dots and brackets are allowed"):format(list_chars(letters)))
		end
		local stripped, others = {}, {}
		for _, cp in ipairs(text) do
			if not is_separator(cp) then
				stripped[#stripped + 1] = cp
				if not ((cp >= 0x30 and cp <= 0x39) or cp == 0x2b) then others[#others + 1] = cp end
			end
		end
		if #others > 0 then
			return fail("invalid-characters", ("the number contains characters that are not part of a phone number (%s)"):format(list_chars(others)))
		end
		if #stripped == 0 then return fail("empty", "the input has separators but no digits") end
		local s = utf8.char(table.unpack(stripped))
		if s:find("+", 2, true) then return fail("misplaced-plus", "\"+\" may appear only once, at the start of the number") end
		local digits
		if s:sub(1, 1) == "+" then digits = s:sub(2)
		elseif s:sub(1, 2) == "00" then digits = s:sub(3)
		elseif s:sub(1, 1) == "0" then
			return fail("no-international-prefix", "the number is in national form (it starts with a trunk prefix 0); write it with its country code, as +CC or 00CC followed by the number")
		else
			return fail("no-international-prefix", "the number has no international prefix; write it with its country code, as +CC or 00CC followed by the number")
		end
		if digits == "" then return fail("too-short", "nothing follows the international prefix") end
		if #digits > data.e164_max_digits then
			return fail("too-long", ("the number has %d digits after the international prefix; E.164 numbers have at most %d"):format(#digits, data.e164_max_digits))
		end
		return { ok = true, e164 = "+" .. digits }
	end

	local function js_trim(input)
		local cps = codepoints(input) or {}
		local t = trim(cps)
		if #t == 0 then return "" end
		return utf8.char(table.unpack(t))
	end

	return { normalise = normalise, trim = js_trim }
end

---------------------------------------------------------------------------------------------------
-- Classification (classify.ts classifyNumber, and the partner's known-bad variants)

local LENGTH_FAILURES = {
	TOO_SHORT = { "too-short", function(cc) return cc ~= "" and ("the number is too short for a +%s number"):format(cc) or "the number is too short to hold a country code and a subscriber number" end },
	TOO_LONG = { "too-long", function(cc) return cc ~= "" and ("the number is too long for a +%s number"):format(cc) or "the number is too long" end },
	INVALID_LENGTH = { "invalid-length", function(cc, e164) return ("+%s numbers never have %d digits after the country code"):format(cc, #e164 - 1 - #cc) end },
	NOT_A_NUMBER = { "invalid-number", function() return "it is not a phone number" end },
	INVALID_COUNTRY = { "unknown-country-code", function(_, e164)
		return ("%s does not start with an assigned country calling code%s"):format(e164, e164:sub(1, 2) == "+0" and " (calling codes never start with 0)" or "")
	end },
}

local function unparsable(kind, reason)
	return { eligible = false, region = "ZZ", e164 = nil, rule = "unparsable", kind = kind, reason = "Unparsable number: " .. reason .. "." }
end

local function length_failure(code, cc, e164)
	local entry = LENGTH_FAILURES[code]
	if entry then return unparsable(entry[1], entry[2](cc, e164)) end
	return unparsable("invalid-number", ("its length is wrong (%s)"):format(code))
end

return function(data)
	local phonelib = new_phonelib(data)
	local normaliser = new_normaliser(data)

	local function decision(e164, region, decided, rule_id)
		return { eligible = decided.eligible, region = region, e164 = e164, rule = rule_id, reason = decided.reason }
	end

	--- classify.ts classifyNumber(input, data.policy)
	local function classify_real(input)
		local normalised = normaliser.normalise(input)
		if not normalised.ok then return unparsable(normalised.kind, normalised.reason) end
		local e164 = normalised.e164

		for _, rule in ipairs(data.rules) do
			if rule.digits and e164:sub(1, #rule.range) == rule.range then
				local after = #e164 - #rule.range
				local min, max = rule.digits[1], rule.digits[2]
				if after < min then
					return unparsable("too-short", ("the number is too short: %s numbers have %d to %d digits after %s"):format(rule.range, min, max, rule.range))
				end
				if after > max then
					return unparsable("too-long", ("the number is too long: %s numbers have %d to %d digits after %s"):format(rule.range, min, max, rule.range))
				end
				return decision(e164, rule.region, rule.decisions[rule.region], rule.id)
			end
		end

		local phone, err = phonelib.parse(e164)
		if not phone then return length_failure(err, "", e164) end
		local problem = phonelib.validate_length(phone.number)
		if problem then return length_failure(problem, phone.cc, phone.number) end
		if not phonelib.is_valid(phone) then
			return unparsable("invalid-number", ("+%s %s is not in any range the +%s numbering plan assigns"):format(phone.cc, phone.nn, phone.cc))
		end
		local country = phone.country
		if not country then
			return unparsable("non-geographic", ("+%s is a non-geographic calling code (a global service), so the number has no region"):format(phone.cc))
		end
		for _, rule in ipairs(data.rules) do
			if not rule.digits and phone.number:sub(1, #rule.range) == rule.range then
				if rule.region then return decision(phone.number, rule.region, rule.decisions[rule.region], rule.id) end
				if rule.decisions[country] then return decision(phone.number, country, rule.decisions[country], rule.id) end
			end
		end
		local decided = data.regions[country] or { eligible = false, reason = ("Region %s: not eligible under policy %s."):format(country, data.policy) }
		return decision(phone.number, country, decided, data.default_rule)
	end

	--- eligibility-faults.ts byRegionList: the real parse, a wrong region, the policy's list alone
	local function by_region_list(input, region_of)
		local real = classify_real(input)
		if not real.e164 then return real end
		local region, err = region_of(real.e164)
		if err then
			return { eligible = false, region = "ZZ", e164 = nil, rule = "unparsable", reason = "the number could not be classified: " .. err }
		end
		region = region or "ZZ"
		local eligible = data.listed[region] == true
		return { eligible = eligible, region = region, e164 = real.e164, rule = "region-list",
			reason = ("region %s is %sin the %s region list"):format(region, eligible and "" or "not ", data.policy) }
	end

	local function classify(input)
		local mode = data.mode
		if mode == "prefix-only" then
			return by_region_list(input, function(e164)
				local phone, err = phonelib.parse(e164)
				if not phone then return nil, err end
				local countries = data.calling_codes[phone.cc]
				return countries and countries[1] or nil
			end)
		elseif mode == "ignores-overrides" then
			return by_region_list(input, function(e164)
				local phone, err = phonelib.parse(e164)
				if not phone then return nil, err end
				return phone.country
			end)
		elseif mode == "no-normalisation" then
			local trimmed = type(input) == "string" and normaliser.trim(input) or ""
			if not trimmed:match("^%+[0-9 %-]+$") then
				return { eligible = false, region = "ZZ", e164 = nil, rule = "unparsable", reason = "the number is not in international form (+ and digits)" }
			end
			return classify_real(input)
		end
		return classify_real(input)
	end

	--- classifyTotal: a number without E.164 is region ZZ and never eligible
	local function classify_total(input)
		local ok, result = pcall(classify, input)
		if not ok then
			return { eligible = false, region = "ZZ", e164 = nil, rule = "unparsable", reason = "the number could not be classified: " .. tostring(result) }
		end
		if not result.e164 then result.eligible, result.region = false, "ZZ" end
		if not result.region or result.region == "" then result.region = "ZZ" end
		return result
	end

	return { classify = classify_total, normalise = normaliser.normalise, phonelib = phonelib, matches_entirely = matches_entirely }
end
