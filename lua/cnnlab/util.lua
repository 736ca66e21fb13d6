--- cnnlab.util — small helpers every task script uses.
--
--   util.write_file(path, text)        atomic: a temporary beside path, then os.rename
--   util.read_file(path)               whole file as a string (error when it can't be read)
--   util.mkdir_p(path)                 like `mkdir -p`
--   util.exists(path)                  true when a file (or folder) is there
--   util.safe_name(name)               name usable as one file name (no '/', no '..')
--   util.json_encode(value)            JSON with sorted keys; integers stay integers, floats
--                                      round-trip; NaN and ±inf become null
--   util.json_decode(text)             through lua-cjson
--   util.write_json(path, value)       json_encode + write_file (+ newline)
--   util.parse_args(arg, spec)         `--flag value` / `--flag=value` parser, see below
--   util.progress(fmt, ...)            one timestamped line on stdout, flushed
--   util.shell_quote(s)                s quoted for /bin/sh
--
-- parse_args spec: {name = "task0_data", description = "...", options = {
--     {"seed", 0, "random seed"}, {"out", "runs/task0", "output folder"},
--     {"quick", false, "smaller run"}, ...}}
-- The type of each default decides the parsing: numbers must parse as numbers (integers
-- when the default is an integer), strings are taken as they are, booleans are switches
-- (`--quick`, `--quick=false`, `--no-quick`), a table default ({}) collects every occurrence
-- of a repeatable option (`--method-opt a=1 --method-opt b=2`). --help prints the usage and exits 0; an unknown
-- flag or a bad value prints the problem and the usage to stderr and exits 2.
local util = {}

--- s quoted for /bin/sh, as one word.
function util.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- True when a file or folder exists at path.
function util.exists(path)
  local f = io.open(path, "rb")
  if f then
    f:close()
    return true
  end
  return os.rename(path, path) and true or false
end

--- Creates the folder path and its missing parents, as `mkdir -p` does; raises when it cannot.
function util.mkdir_p(path)
  if path == "" or path == "." then return end
  local ok = os.execute("mkdir -p " .. util.shell_quote(path))
  if not ok then error("mkdir_p: cannot create folder " .. path, 2) end
end

--- The whole content of the file at path as a string; raises when it cannot be read.
function util.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then error("read_file: " .. err, 2) end
  local s = f:read("a")
  f:close()
  return s
end

--- name made safe as one file or folder name: characters other than letters, digits, '_',
-- '-' and '.' become '_', and a name of only dots (".", "..") or an empty one becomes "_" —
-- so a plug-in's name such as "../../x" cannot lead a path out of its folder.
function util.safe_name(name)
  local s = tostring(name):gsub("[^%w_%.%-]", "_")
  if s == "" or s:match("^%.+$") then s = "_" .. s:gsub("%.", "_") end
  return s
end

-- ---------------------------------------------------------------- error locations

-- The library's folder as chunk names spell it ("@/…/lua/cnnlab/"): frames there are not the
-- user's.
local LIB = debug.getinfo(1, "S").source:match("^(@.*/)[^/]*$") or "@lua/cnnlab/"

local function in_library(source)
  return source:sub(1, #LIB) == LIB or source:find("^@lua/cnnlab/") ~= nil
end

--- "file:line: " of the first Lua frame, from level up, that is not in the library (the
-- user's line that called into it), or "" when there is none.
function util.user_location(level)
  level = (level or 1) + 1
  while true do
    local info = debug.getinfo(level, "Sl")
    if not info then return "" end
    if info.what ~= "C" and info.currentline > 0 and not in_library(info.source) then
      return ("%s:%d: "):format(info.short_src, info.currentline)
    end
    level = level + 1
  end
end

--- A message handler for xpcall: a string error located in the library (or not located at all)
-- is located at the user's line instead; other errors pass unchanged. The stack is still whole
-- when a handler runs, so the user's frame is found even through pcalls inside the library.
function util.relocate(msg)
  if type(msg) ~= "string" then return msg end
  -- no user frame (a tail call such as `return net(x)` leaves none): the library's location
  -- is dropped all the same, as it tells the user nothing
  local where = util.user_location(2)
  local path, rest = msg:match("^([^\n:]+):%d+: (.*)$")
  if path then
    if not in_library("@" .. path) and not (path:find("lua/cnnlab/", 1, true)) then return msg end
    msg = rest
  end
  return where .. msg
end

--- Calls fn(...) and re-raises any error at the user's line (util.relocate).
function util.call_located(fn, ...)
  local r = table.pack(xpcall(fn, util.relocate, ...))
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

--- Raises msg located at the user's line (the first frame outside the library).
function util.user_error(msg)
  error(util.user_location(2) .. msg, 0)
end

local tmp_counter = 0

local function core_or_nil()
  local ok, core = pcall(require, "cnnlab.core")
  return ok and core or nil
end

local PROCESS_START = os.time()

--- Writes text to path so that a reader never sees a half-written file: the text goes to a
-- temporary name in the same folder first (path.tmp.<pid>.<n>), then is renamed over path.
function util.write_file(path, text)
  tmp_counter = tmp_counter + 1
  local core = core_or_nil()
  local pid = core and core.getpid and core.getpid() or math.random(1 << 20, 1 << 30)
  local tmp = string.format("%s.tmp.%d.%d", path, pid, tmp_counter)
  local f, err = io.open(tmp, "wb")
  if not f then error("write_file: cannot create " .. path .. ": " .. err, 2) end
  local ok, werr = f:write(text)
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    error("write_file: " .. path .. ": " .. tostring(werr or cerr) .. " (earlier file unchanged)", 2)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    error("write_file: cannot rename to " .. path .. ": " .. tostring(rerr), 2)
  end
end

-- ---------------------------------------------------------------- output folders

--- Removes the stale temporaries a killed run left in dir: files named NAME.tmp.<pid>.<n>
-- (util.write_file's) whose process is gone, and NAME.tmp.XXXXXX (the core's writers')
-- last changed before this process started and at least `age` seconds ago (default 60), so
-- that a file another live run is writing is never touched. Returns the removed names.
function util.sweep_temporaries(dir, age)
  local core = core_or_nil()
  if not (core and core.listdir) then return {} end
  local names = core.listdir(dir)
  local removed = {}
  local now = os.time()
  for _, name in ipairs(names or {}) do
    local path = dir .. "/" .. name
    local pid = name:match("^.+%.tmp%.(%d+)%.%d+$")
    local stale = false
    if pid then
      pid = math.tointeger(tonumber(pid))
      stale = pid ~= (core.getpid and core.getpid()) and not util.exists("/proc/" .. pid)
        and util.exists("/proc/self")
    end
    if not stale and name:match("^.+%.tmp%.%w%w%w%w%w%w$") and core.file_mtime then
      local t = core.file_mtime(path)
      stale = t ~= nil and t < PROCESS_START and now - t >= (age or 60)
    end
    if stale and os.remove(path) then removed[#removed + 1] = name end
  end
  return removed
end

--- The folders of path dir that do not exist yet, innermost first ({} when dir exists).
function util.missing_folders(dir)
  local made = {}
  local d = dir
  while d ~= nil and d ~= "" and not util.exists(d) do
    made[#made + 1] = d
    d = d:match("^(.*)/[^/]+/*$")
  end
  return made
end

--- Checks, before any work, that files can be written in folder dir; true, or nil and why.
function util.check_writable(dir)
  local made = util.missing_folders(dir)
  local ok = os.execute("mkdir -p " .. util.shell_quote(dir) .. " 2>/dev/null")
  local why
  if not ok then
    why = ("cannot create the output folder %s"):format(dir)
  else
    local probe = ("%s/.write_test.tmp.%d.0"):format(dir, (core_or_nil() or {getpid = function()
      return 0 end}).getpid())
    local f, err = io.open(probe, "wb")
    if f then f:close(); os.remove(probe)
    else
      why = ("the output folder %s is not writable (%s)"):format(dir,
        tostring(err):match(":%s*([^:]+)$") or tostring(err))
    end
  end
  for _, d in ipairs(made) do os.remove(d) end -- innermost first; only empty ones go
  if why then return nil, why end
  return true
end

--- Removes the folders of a list (util.missing_folders' result, innermost first) that are
-- empty: what a run that failed before writing anything made.
function util.remove_if_empty(folders)
  local core = core_or_nil()
  for _, d in ipairs(folders) do
    local names = core and core.listdir and core.listdir(d)
    if not (names and #names == 0 and os.remove(d)) then return end
  end
end

-- ---------------------------------------------------------------- JSON

local escapes = {['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
                 ["\r"] = "\\r", ["\t"] = "\\t"}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function encode_number(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%.1f", v) end
  for _, fmt in ipairs({"%.15g", "%.16g", "%.17g"}) do
    local s = string.format(fmt, v)
    if tonumber(s) == v then return s end
  end
  return string.format("%.17g", v)
end

local function is_array(t)
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    n = n + 1
  end
  for i = 1, n do
    if t[i] == nil then return false end
  end
  return true, n
end

local function encode(v, indent, depth, seen)
  local ty = type(v)
  if ty == "nil" then return "null" end
  if ty == "boolean" then return tostring(v) end
  if ty == "number" then return encode_number(v) end
  if ty == "string" then return encode_string(v) end
  if ty ~= "table" then error("json_encode: cannot encode a " .. ty, 0) end
  if seen[v] then error("json_encode: cycle in table", 0) end
  seen[v] = true
  local pad = indent and ("\n" .. string.rep(indent, depth + 1)) or ""
  local close = indent and ("\n" .. string.rep(indent, depth)) or ""
  local sep = indent and ": " or ":"
  local parts = {}
  local arr, n = is_array(v)
  local out
  if arr and n > 0 then
    for i = 1, n do parts[i] = pad .. encode(v[i], indent, depth + 1, seen) end
    out = "[" .. table.concat(parts, ",") .. close .. "]"
  elseif arr then
    out = "{}"
  else
    local keys = {}
    for k in pairs(v) do
      if type(k) ~= "string" and type(k) ~= "number" then
        error("json_encode: keys must be strings or numbers, got " .. type(k), 0)
      end
      keys[#keys + 1] = k
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for i, k in ipairs(keys) do
      parts[i] = pad .. encode_string(tostring(k)) .. sep .. encode(v[k], indent, depth + 1, seen)
    end
    out = "{" .. table.concat(parts, ",") .. close .. "}"
  end
  seen[v] = nil
  return out
end

--- JSON text of value; opts.indent (a string such as "  ") pretty-prints.
function util.json_encode(value, opts)
  return encode(value, opts and opts.indent, 0, {})
end

--- The Lua value of JSON text, decoded by lua-cjson (an error says to install it when missing).
function util.json_decode(text)
  local ok, cjson = pcall(require, "cjson")
  if not ok then error("json_decode: needs lua-cjson (apt-get install lua-cjson)", 2) end
  return cjson.decode(text)
end

--- Writes value as indented JSON (plus a newline) to path, atomically (util.write_file).
function util.write_json(path, value)
  util.write_file(path, util.json_encode(value, {indent = "  "}) .. "\n")
end

-- ---------------------------------------------------------------- arguments

local function usage(spec)
  local lines = {string.format("usage: cnnlab %s [options]", spec.script or (spec.name or "script"))}
  if spec.description then lines[#lines + 1] = spec.description end
  lines[#lines + 1] = "options:"
  for _, o in ipairs(spec.options) do
    -- options are shown as documented, with dashes (--method-opt); both spellings parse
    local name, default, help = o[1]:gsub("_", "-"), o[2], o[3] or ""
    local flag = type(default) == "boolean" and ("--" .. name)
      or string.format("--%s %s", name, math.type(default) == "integer" and "N"
        or type(default) == "number" and "X" or "VALUE")
    -- each default once: a help text that states its own default keeps it, an empty
    -- string default (meaning "see the help") is not shown as "(default )"
    local shown
    if type(default) == "table" then shown = "(repeatable)"
    elseif help:find("%(default ") or default == "" then shown = nil
    else shown = "(default " .. tostring(default) .. ")" end
    lines[#lines + 1] = string.format("  %-22s %s", flag, shown and (help .. " " .. shown) or help)
  end
  lines[#lines + 1] = "  --help                 show this help"
  return table.concat(lines, "\n")
end

local function convert(name, default, text)
  if type(default) == "boolean" then
    if text == nil or text == "true" or text == "1" then return true end
    if text == "false" or text == "0" then return false end
    return nil, string.format("--%s takes no value or true/false, got '%s'", name, text)
  end
  if text == nil then return nil, string.format("--%s needs a value", name) end
  if type(default) == "number" then
    local v = tonumber(text)
    local what = math.type(default) == "integer" and "an integer" or "a number"
    if not v then return nil, string.format("--%s expects %s, got '%s'", name, what, text) end
    if math.type(default) == "integer" then
      v = math.tointeger(v)
      if not v then return nil, string.format("--%s expects an integer, got '%s'", name, text) end
    end
    return v
  end
  return text
end

--- Parses arg (the script's `arg` table) against spec; returns a table option → value.
-- With opts.exit == false, problems raise errors instead of exiting (for tests).
function util.parse_args(args, spec, opts)
  local exit = not (opts and opts.exit == false)
  local function fail(msg)
    if not exit then error(msg, 0) end
    io.stderr:write(msg, "\n", usage(spec), "\n")
    os.exit(2)
  end
  local known, result, given = {}, {}, {}
  for _, o in ipairs(spec.options) do
    known[o[1]] = o
    result[o[1]] = type(o[2]) == "table" and {} or o[2]
  end
  local i = 1
  while args[i] ~= nil do
    local a = args[i]
    if a == "--help" or a == "-h" then
      if not exit then return nil, usage(spec) end
      print(usage(spec))
      os.exit(0)
    end
    local name, value = a:match("^%-%-([%w_%-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w_%-]+)$") end
    if not name then fail(string.format("%s: unexpected argument '%s'", spec.name or "script", a)) end
    local negated = false
    if not known[name] and name:sub(1, 3) == "no-" and known[name:sub(4)]
      and type(known[name:sub(4)][2]) == "boolean" then
      name, negated = name:sub(4), true
    end
    local o = known[name] or known[name:gsub("%-", "_")]
    if not o then fail(string.format("%s: unknown option --%s", spec.name or "script", name)) end
    given[o[1]] = true
    if negated then
      result[o[1]] = false
    else
      if value == nil and type(o[2]) ~= "boolean" then
        i = i + 1
        value = args[i]
      end
      local v, err = convert(o[1], type(o[2]) == "table" and "" or o[2], value)
      if err then fail(err) end
      if type(o[2]) == "table" then
        table.insert(result[o[1]], v)
      else
        result[o[1]] = v
      end
    end
    i = i + 1
  end
  -- an entry's resolve(result, given) may replace a default the user did not override (a
  -- default that depends on another option, as --model's on --quick)
  for _, o in ipairs(spec.options) do
    if type(o.resolve) == "function" and not given[o[1]] then
      local v = o.resolve(result)
      if v ~= nil then result[o[1]] = v end
    end
  end
  util.last_args = result -- study.main finds the run's --out here
  return result
end

local start_time

--- Prints "[  12.3s] message" and flushes, so long runs show where they are.
function util.progress(fmt, ...)
  local ok, core = pcall(require, "cnnlab.core")
  local now = ok and core.now and core.now() or os.clock()
  start_time = start_time or now
  io.stdout:write(string.format("[%7.1fs] ", now - start_time), string.format(fmt, ...), "\n")
  io.stdout:flush()
end

return util
