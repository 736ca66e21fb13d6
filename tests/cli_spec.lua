-- The cnnlab executable: command line, exit codes, and the REPL driven through a pipe.
-- Every case runs the real binary (CNNLAB_BIN, default ./cnnlab) in a shell and checks what
-- it printed and how it exited. Only pure-Lua behaviour and `lab ~= nil` are assumed of the
-- library, so this spec does not depend on what the core provides.

local BIN = os.getenv("CNNLAB_BIN") or "./cnnlab"

local function q(s)
  return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'"
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  os.remove(path)
  return s
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- Runs `env BIN args` (args is shell text, already quoted) with `input` on stdin (none:
-- /dev/null). Returns {code, out, err}.
local function run(args, input, env)
  local out, err = os.tmpname(), os.tmpname()
  local inp = input and write_file(os.tmpname(), input) or "/dev/null"
  local cmd = string.format("%s %s %s <%s >%s 2>%s", env or "", q(BIN), args, inp, out, err)
  local _, how, code = os.execute(cmd)
  if input then os.remove(inp) end
  return {code = code, how = how, out = slurp(out), err = slurp(err)}
end

local function script(text)
  return write_file(os.tmpname(), text)
end

local function lines(s)
  local t = {}
  for l in s:gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

-- Prints arg from its lowest index up, then the script's varargs.
local ARG_DUMP = [[
local lo = 0
while arg[lo - 1] ~= nil do lo = lo - 1 end
local t = {}
for i = lo, #arg do t[#t + 1] = i .. "=" .. arg[i] end
print(table.concat(t, "|"))
print(select("#", ...), ...)
]]

describe("cnnlab command line", function()
  it("-v prints the version of cnnlab and of Lua", function()
    local r = run("-v")
    assert.are.equal(0, r.code)
    assert.matches("^cnnlab 0%.1 %(Lua 5%.4%.%d+%)\n$", r.out)
  end)

  it("-h prints the usage on stdout and exits 0", function()
    local r = run("-h")
    assert.are.equal(0, r.code)
    assert.matches("usage: cnnlab", r.out, 1, true)
    assert.matches("--threads N", r.out, 1, true)
    assert.are.equal("", r.err)
  end)

  it("an unknown option prints the usage on stderr and exits 1", function()
    local r = run("--bogus")
    assert.are.equal(1, r.code)
    assert.matches("unrecognized option '--bogus'", r.err, 1, true)
    assert.matches("usage: cnnlab", r.err, 1, true)
    assert.are.equal("", r.out)
  end)

  it("an option missing its argument is an error", function()
    local r = run("-e")
    assert.are.equal(1, r.code)
    assert.matches("'-e' needs argument", r.err, 1, true)
  end)

  it("runs several -e chunks in order, sharing globals", function()
    local r = run("-e 'io.write(\"a\") x = 1' -e 'io.write(\"b\", x)' -e 'print(\"c\")'")
    assert.are.equal(0, r.code)
    assert.are.equal("ab1c\n", r.out)
  end)

  it("passes script arguments in arg and in ...", function()
    local s = script(ARG_DUMP)
    local r = run(q(s) .. " a 'b c'")
    os.remove(s)
    assert.are.equal(0, r.code)
    local out = lines(r.out)
    assert.are.equal("-1=" .. BIN .. "|0=" .. s .. "|1=a|2=b c", out[1])
    assert.are.equal("2\ta\tb c", out[2])
  end)

  it("puts the interpreter and its options at negative arg indices", function()
    local s = script(ARG_DUMP)
    local r = run("-e 'x=1' --threads 2 " .. q(s) .. " -v")
    os.remove(s)
    assert.are.equal(0, r.code)
    local out = lines(r.out)
    assert.are.equal("-5=" .. BIN .. "|-4=-e|-3=x=1|-2=--threads|-1=2|0=" .. s .. "|1=-v", out[1])
    assert.are.equal("1\t-v", out[2])
  end)

  it("without a script, arg[0] is the interpreter", function()
    local r = run("-e 'print(arg[0], arg[1], arg[2])'")
    assert.are.equal(BIN .. "\t-e\tprint(arg[0], arg[1], arg[2])\n", r.out)
  end)

  it("reads the script from stdin with -", function()
    local r = run("- x y", "print(40 + 2, ...)\n")
    assert.are.equal(0, r.code)
    assert.are.equal("42\tx\ty\n", r.out)
  end)

  it("a script error prints the message and a traceback and exits 1", function()
    local s = script("local function inner() error('kaboom') end\ninner()\n")
    local r = run(q(s))
    os.remove(s)
    assert.are.equal(1, r.code)
    assert.matches("kaboom", r.err, 1, true)
    assert.matches("stack traceback:", r.err, 1, true)
    assert.matches("in local 'inner'", r.err, 1, true)
  end)

  it("an error in -e exits 1 and stops the remaining chunks", function()
    local r = run("-e 'error(\"first\")' -e 'print(\"never\")'")
    assert.are.equal(1, r.code)
    assert.matches("first", r.err, 1, true)
    assert.are.equal("", r.out)
  end)

  it("reports non-string error objects", function()
    local r = run("-e 'error({})'")
    assert.are.equal(1, r.code)
    assert.matches("(error object is a table value)", r.err, 1, true)
    r = run("-e 'error(setmetatable({}, {__tostring = function() return \"custom\" end}))'")
    assert.are.equal(1, r.code)
    assert.matches("custom", r.err, 1, true)
  end)

  it("a syntax error or a missing script exits 1", function()
    local s = script("x = = 1\n")
    local r = run(q(s))
    os.remove(s)
    assert.are.equal(1, r.code)
    assert.matches("unexpected symbol", r.err, 1, true)
    r = run(q("/nonexistent/script.lua"))
    assert.are.equal(1, r.code)
    assert.matches("cannot open", r.err, 1, true)
  end)

  it("os.exit(n) sets the exit status", function()
    assert.are.equal(3, run("-e 'os.exit(3)'").code)
    assert.are.equal(0, run("-e 'os.exit(true)'").code)
    assert.are.equal(1, run("-e 'os.exit(false)'").code)
    local s = script("print('before')\nos.exit(7)\nprint('after')\n")
    local r = run(q(s))
    os.remove(s)
    assert.are.equal(7, r.code)
    assert.are.equal("before\n", r.out)
  end)

  it("--threads N sets CNNLAB_THREADS, overriding the environment", function()
    local r = run("--threads 2 -e 'print(os.getenv(\"CNNLAB_THREADS\"))'")
    assert.are.equal("2\n", r.out)
    r = run("--threads=3 -e 'print(os.getenv(\"CNNLAB_THREADS\"))'", nil, "CNNLAB_THREADS=9")
    assert.are.equal("3\n", r.out)
    r = run("--threads lots -e ''")
    assert.are.equal(1, r.code)
    assert.matches("--threads", r.err, 1, true)
  end)

  it("honours LUA_INIT unless -E is given", function()
    local env = "env -u LUA_INIT_5_4 LUA_INIT='init_ran = 5'"
    assert.are.equal("5\n", run("-e 'print(init_ran)'", nil, env).out)
    assert.are.equal("nil\n", run("-E -e 'print(init_ran)'", nil, env).out)
  end)

  it("-l requires a module into a global", function()
    local r = run("-l string -e 'print(string == package.loaded.string)'")
    assert.are.equal("true\n", r.out)
  end)

  it("sets the global lab and registers the core and the library path", function()
    local r = run("-e 'print(lab ~= nil, package.loaded.cnnlab == lab)'"
      .. " -e 'print(type(package.preload[\"cnnlab.core\"]))'"
      .. " -e 'print((package.path:match(\"^[^;]*\")))'")
    assert.are.equal(0, r.code)
    local out = lines(r.out)
    assert.are.equal("true\ttrue", out[1])
    assert.are.equal("function", out[2])
    assert.matches("/%?%.lua$", out[3])
  end)

  it("turns SIGINT into the error 'interrupted!' while code runs", function()
    local marker = os.tmpname()
    os.remove(marker)
    local err = os.tmpname()
    local sh = string.format([[
%s -e "io.open('%s', 'w'):close() while true do end" 2>%s & pid=$!
i=0; while [ ! -e %s ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
kill -INT $pid
( sleep 20; kill -KILL $pid ) >/dev/null 2>&1 & dog=$!
wait $pid; rc=$?
kill $dog 2>/dev/null
echo $rc]], q(BIN), marker, err, marker)
    local p = io.popen("sh -c " .. q(sh))
    local rc = p:read("l")
    p:close()
    os.remove(marker)
    assert.are.equal("1", rc)
    assert.matches("interrupted!", slurp(err), 1, true)
  end)

  it("starts quickly (informational only)", function()
    local p = io.popen("sh -c " .. q(string.format(
      "s=$(date +%%s%%N); i=0; ok=0; while [ $i -lt 20 ]; do %s -e '' </dev/null && ok=$((ok+1)); " ..
      "i=$((i+1)); done; e=$(date +%%s%%N); echo $ok $(( (e - s) / 20000 ))", q(BIN))))
    local ok, us = p:read("n", "n")
    p:close()
    assert.are.equal(20, ok)
    print(string.format("\ninfo: cnnlab -e '' takes %.1f ms on average (20 runs)", us / 1000))
  end)
end)

-- The core issue's example, in cnnlab's API: a forward hook, a loss, backward; the same text
-- as a script and typed into the REPL.
local ISSUE_EXAMPLE = [[
local lab = require "cnnlab"
local x = lab.rand({8, 3, 28, 28}, {requires_grad = true})
local net = lab.nn.Sequential {
  lab.nn.Conv2d(3, 32, 3, {padding = 1}), lab.nn.ReLU(), lab.nn.MaxPool2d(3, 2),
  lab.nn.Flatten(), lab.nn.Linear(32 * 13 * 13, 10) }
local h = net[1]:register_forward_hook(function(m, input, output) return output end)
local loss = lab.cross_entropy(net(x), lab.tensor({0, 1, 2, 3, 4, 5, 6, 7}):long())
loss:backward()
h:remove()
print(table.concat(x.grad.shape, "x"), net[1].weight.grad ~= nil, loss:item() > 0)
]]

describe("the core issue's example", function()
  it("runs as a script and through the REPL", function()
    local path = script(ISSUE_EXAMPLE)
    local as_script = run(q(path))
    os.remove(path)
    assert.are.equal(0, as_script.code, as_script.err)
    assert.truthy(as_script.out:find("8x3x28x28\ttrue\ttrue", 1, true), as_script.out)
    local typed = run("", ISSUE_EXAMPLE)
    assert.are.equal(0, typed.code, typed.err)
    assert.truthy(typed.out:find("8x3x28x28\ttrue\ttrue", 1, true), typed.out)
  end)
end)

describe("cnnlab REPL through a pipe", function()
  it("prints values, survives errors, and exits 0 at end of input", function()
    local r = run("", '1+1\nlocal x = 2\nx\nerror("boom")\nprint("still alive")\n')
    assert.are.equal(0, r.code)
    assert.are.same({"2", "2", "still alive"}, lines(r.out))
    assert.matches('stdin:1: boom', r.err, 1, true)
    assert.matches("stack traceback:", r.err, 1, true)
  end)

  it("prints no prompt or banner when stdin is not a terminal", function()
    local r = run("", "1+1\n")
    assert.are.equal("2\n", r.out)
  end)

  it("continues incomplete input on the next lines", function()
    local r = run("", "function f()\nreturn 5 end\nf()\nt = {\n1,\n2}\n#t\n")
    assert.are.same({"5", "2"}, lines(r.out))
    assert.are.equal("", r.err)
  end)

  it("reports input that is still incomplete at end of file", function()
    local r = run("", "print(1)\nfunction g(\n")
    assert.are.equal(0, r.code)
    assert.are.equal("1\n", r.out)
    assert.matches("<eof>", r.err, 1, true)
  end)

  it("prints several values tab-separated, strings raw, and =expr", function()
    local r = run("", '1, "a", nil, true\n"hi"\n=3*4\nreturn 2^10\n')
    assert.are.same({"1\ta\tnil\ttrue", "hi", "12", "1024.0"}, lines(r.out))
  end)

  it("prints nothing for statements", function()
    local r = run("", "y = 3\nprint(y)\n")
    assert.are.equal("3\n", r.out)
  end)

  it("keeps a leading local declaration for later lines", function()
    local r = run("", "local function h() return 6 end\nh()\nlocal a, b = 1, 2\na + b\n"
      .. "local c <const> = 1\nc\n")
    assert.are.same({"6", "3", "nil"}, lines(r.out))
  end)

  it("summarises tables on one line", function()
    local r = run("", '{1, 2, 3}\n{a = 1, b = "x"}\n{{1}, x = {}}\n{}\n'
      .. '{["a b"] = 1, [2.5] = true}\n')
    assert.are.same({'{1, 2, 3}', '{a = 1, b = "x"}', '{{…}, x = {}}', '{}',
      '{[2.5] = true, ["a b"] = 1}'}, lines(r.out))
  end)

  it("truncates big tables and long strings instead of flooding", function()
    local r = run("", "t = {} for i = 1, 1000 do t[i] = i end\nt\n{s = string.rep('a', 500)}\n"
      .. "big = {} for i = 1, 100 do big['k' .. i] = i end\nbig\n")
    local out = lines(r.out)
    assert.are.equal(3, #out)
    assert.matches("^{1, 2, 3, ", out[1])
    assert.matches("… (980 more)}", out[1], 1, true)
    assert.is_true(#out[1] < 200)
    assert.matches('^{s = "a+…"}$', out[2])
    assert.is_true(#out[2] < 80)
    -- the keys shown are the smallest ones, so the line is the same on every run
    assert.matches("^{k1 = 1, k10 = 10, k100 = 100, k11 = 11, ", out[3])
    assert.are.equal("… (80 more)}", out[3]:sub(-#"… (80 more)}"))
  end)

  it("uses __tostring and __name when printing", function()
    local r = run("", 'setmetatable({}, {__tostring = function() return "obj!" end})\n'
      .. 'setmetatable({w = 1}, {__name = "Conv2d"})\n')
    assert.are.same({"obj!", "Conv2d {w = 1}"}, lines(r.out))
  end)

  it("reports an error raised while printing and goes on", function()
    local r = run("", 'setmetatable({}, {__tostring = function() error("bad tostring") end})\n'
      .. 'print("next")\n')
    assert.are.equal("next\n", r.out)
    assert.matches("bad tostring", r.err, 1, true)
  end)

  it("os.exit(n) ends the session with status n", function()
    local r = run("", "print(1)\nos.exit(4)\nprint(2)\n")
    assert.are.equal(4, r.code)
    assert.are.equal("1\n", r.out)
  end)

  it("shares stdin with io.read", function()
    local r = run("", "x = io.read()\nhello there\nx\n")
    assert.are.equal("hello there\n", r.out)
  end)

  it("-i enters the REPL after the script", function()
    local s = script("x = 7\n")
    local r = run("-i " .. q(s), "x * 6\n")
    os.remove(s)
    assert.are.equal(0, r.code)
    assert.are.equal("42\n", r.out)
  end)

  it("has the global lab", function()
    assert.are.equal("true\n", run("", "lab ~= nil\n").out)
  end)

  it("help() orients and help(x) lists members, methods included", function()
    local r = run("", "help()\n")
    assert.matches("lab", r.out, 1, true)
    assert.matches("docs/repl.md", r.out, 1, true)
    r = run("", "help(setmetatable({own = 1}, {__index = {foo = function() end, bar = 1}}))\n"
      .. "help(io.stdout)\n")
    assert.matches("3 fields and methods\n  bar  foo()  own\n", r.out, 1, true)
    assert.matches("write()", r.out, 1, true)
  end)

  it("an interrupt stops the running line and the session continues", function()
    local marker = os.tmpname()
    os.remove(marker)
    local input = write_file(os.tmpname(),
      string.format("io.open('%s', 'w'):close() while true do end\nprint('after')\n", marker))
    local out, err = os.tmpname(), os.tmpname()
    local sh = string.format([[
%s <%s >%s 2>%s & pid=$!
i=0; while [ ! -e %s ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
kill -INT $pid
( sleep 20; kill -KILL $pid ) >/dev/null 2>&1 & dog=$!
wait $pid; rc=$?
kill $dog 2>/dev/null
echo $rc]], q(BIN), input, out, err, marker)
    local p = io.popen("sh -c " .. q(sh))
    local rc = p:read("l")
    p:close()
    os.remove(marker)
    os.remove(input)
    assert.are.equal("0", rc)
    assert.are.equal("after\n", slurp(out))
    assert.matches("interrupted!", slurp(err), 1, true)
  end)
end)
