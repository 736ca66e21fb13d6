-- Do two runs folders hold the same results? The acceptance test of a change that must not
-- change behaviour (a restructuring): run `make demo QUICK=1` before and after, then
--
--   ./cnnlab tools/compare_runs.lua RUNS_BEFORE RUNS_AFTER     (e.g. /tmp/a/quick /tmp/b/quick)
--
-- Every *.safetensors is compared byte for byte; when the bytes differ, the tensors are
-- compared (header and data) and the metadata key by key, so that a checkpoint whose only
-- difference is its recorded training time counts as the same. Every metrics.json and
-- result.json is compared key by key (nested tables flattened to a.b.c), ignoring timings:
-- keys whose last part names a time (seconds, time, s_per_..., elapsed, duration, per
-- second). A key only in the second run is reported as added (not a failure: a change may
-- record more); a key only in the first, a changed value, a missing file or different
-- tensors is a difference. One line per file, then the verdict; exit status 1 on a
-- difference, 2 on bad arguments.
local util = require "cnnlab.util"

local A, B = arg[1], arg[2]
if not A or not B or arg[3] then
  io.stderr:write("usage: ./cnnlab tools/compare_runs.lua RUNS_A RUNS_B\n")
  os.exit(2)
end

--- Is this (flattened) key a timing? Judged by its last part: "erm_seconds_mean",
-- "history.1.seconds", "train_seconds_per_epoch", "total_seconds" are; "hard_acc" is not.
local TIMING = {"seconds", "time", "elapsed", "duration", "s_per_", "_ms$", "^ms_",
  "img_s", "per_s$"}
local function is_timing(key)
  local last = key:match("([^.]+)$"):lower()
  for _, p in ipairs(TIMING) do
    if last:find(p) then return true end
  end
  return false
end

local function files_under(root)
  local list = {}
  local p = io.popen(("cd %s 2>/dev/null && find . -type f \\( -name '*.safetensors' -o "
    .. "-name metrics.json -o -name result.json \\) | sort"):format(util.shell_quote(root)))
  for line in p:lines() do list[#list + 1] = line:gsub("^%./", "") end
  p:close()
  return list
end

local function flatten(prefix, v, out)
  if type(v) ~= "table" then
    out[prefix] = v
    return out
  end
  local any = false
  for k, x in pairs(v) do
    any = true
    flatten(prefix == "" and tostring(k) or prefix .. "." .. tostring(k), x, out)
  end
  if not any then out[prefix] = "{}" end
  return out
end

local function show(v)
  if type(v) == "number" then return ("%.17g"):format(v) end
  return tostring(v)
end

--- Compares two flat tables; returns {changed = {...}, missing = {...}, added = {...},
-- timings = n} with key lists sorted.
local function compare_flat(a, b)
  local r = {changed = {}, missing = {}, added = {}, timings = 0}
  for k, va in pairs(a) do
    local vb = b[k]
    if is_timing(k) then
      if vb ~= va then r.timings = r.timings + 1 end
    elseif vb == nil then
      r.missing[#r.missing + 1] = k
    elseif vb ~= va and not (va ~= va and vb ~= vb) then
      r.changed[#r.changed + 1] = ("%s: %s -> %s"):format(k, show(va), show(vb))
    end
  end
  for k in pairs(b) do
    if a[k] == nil then r.added[#r.added + 1] = k end
  end
  for _, l in pairs({r.changed, r.missing, r.added}) do table.sort(l) end
  return r
end

local function decode_json(text)
  local ok, v = pcall(util.json_decode, text)
  return ok and v or nil
end

--- A safetensors file: its tensor header (without metadata), data bytes and metadata.
local function parse_safetensors(bytes)
  if #bytes < 8 then return nil, "shorter than 8 bytes" end
  local n = string.unpack("<I8", bytes)
  local header = decode_json(bytes:sub(9, 8 + n))
  if type(header) ~= "table" then return nil, "unreadable header" end
  local meta = header.__metadata__ or {}
  header.__metadata__ = nil
  -- metadata values that are JSON (a checkpoint's history, settings) are compared inside
  local flat = {}
  for k, v in pairs(meta) do
    local j = type(v) == "string" and v:match("^[%[{]") and decode_json(v)
    if type(j) == "table" then flatten(k, j, flat) else flat[k] = v end
  end
  return {header = flatten("", header, {}), data = bytes:sub(9 + n), meta = flat}
end

local function summary(r)
  local parts = {}
  if #r.changed > 0 then parts[#parts + 1] = ("%d changed: %s"):format(#r.changed,
    table.concat(r.changed, "; ")) end
  if #r.missing > 0 then parts[#parts + 1] = ("%d missing: %s"):format(#r.missing,
    table.concat(r.missing, ", ")) end
  return table.concat(parts, "; ")
end

local function compare_file(rel)
  local pa, pb = A .. "/" .. rel, B .. "/" .. rel
  if not util.exists(pb) then return "DIFFERENT", "missing in " .. B end
  local ba, bb = util.read_file(pa), util.read_file(pb)
  if rel:match("%.safetensors$") then
    if ba == bb then return "same", "identical bytes" end
    local sa, ea = parse_safetensors(ba)
    local sb, eb = parse_safetensors(bb)
    if not sa or not sb then return "DIFFERENT", "bytes differ; " .. tostring(ea or eb) end
    local h = compare_flat(sa.header, sb.header)
    if #h.changed + #h.missing + #h.added > 0 then
      return "DIFFERENT", "tensor layout differs: " .. summary(h)
    end
    if sa.data ~= sb.data then return "DIFFERENT", "tensor data differ" end
    local m = compare_flat(sa.meta, sb.meta)
    if #m.changed + #m.missing > 0 then return "DIFFERENT", "metadata: " .. summary(m) end
    return "same", ("tensors identical; metadata differs only in %d timing value%s%s"):format(
      m.timings, m.timings == 1 and "" or "s",
      #m.added > 0 and ("; added metadata: " .. table.concat(m.added, ", ")) or ""), m.added
  end
  local ja, jb = decode_json(ba), decode_json(bb)
  if type(ja) ~= "table" or type(jb) ~= "table" then
    return ba == bb and "same" or "DIFFERENT", "not JSON objects; bytes " ..
      (ba == bb and "identical" or "differ")
  end
  local r = compare_flat(flatten("", ja, {}), flatten("", jb, {}))
  if #r.changed + #r.missing > 0 then return "DIFFERENT", summary(r) end
  local keys = 0
  for _ in pairs(ja) do keys = keys + 1 end
  return "same", ("%d keys; %d timing value%s differ%s"):format(keys, r.timings,
    r.timings == 1 and "" or "s", #r.added > 0 and ("; ADDED keys: " .. table.concat(r.added, ", "))
    or ""), r.added
end

local fa, fb = files_under(A), files_under(B)
if #fa == 0 then
  io.stderr:write(("compare_runs: no safetensors, metrics.json or result.json under %s\n"):format(A))
  os.exit(2)
end
local in_a = {}
for _, f in ipairs(fa) do in_a[f] = true end

local differ, added_files, added_keys = 0, {}, 0
for _, rel in ipairs(fa) do
  local verdict, detail, added = compare_file(rel)
  if verdict ~= "same" then differ = differ + 1 end
  added_keys = added_keys + (added and #added or 0)
  print(("%-9s %s: %s"):format(verdict, rel, detail))
end
for _, rel in ipairs(fb) do
  if not in_a[rel] then
    added_files[#added_files + 1] = rel
    print(("%-9s %s: only in %s"):format("added", rel, B))
  end
end
print(("\n%d files compared: %d the same, %d different; %d keys and %d files added in %s.")
  :format(#fa, #fa - differ, differ, added_keys, #added_files, B))
if differ > 0 then
  print("VERDICT: DIFFERENT")
  os.exit(1)
end
print("VERDICT: SAME (timings ignored)")
