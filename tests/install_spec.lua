-- Installing the library (docs/install.md): `make install` puts cnnlab, the whole lua/cnnlab/
-- tree and the C module where an installed interpreter and plain lua5.4 find them, prints the
-- LUA_PATH/LUA_CPATH lines for a PREFIX off lua5.4's search paths, and `make uninstall` removes
-- exactly what it put; `luarocks make` installs the same into a rocks tree.

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute("mkdir -p " .. tmp))
teardown(function() os.execute("rm -rf " .. tmp) end)

-- Under the sanitizers (make check-asan) the installed C module is instrumented, and an
-- uninstrumented lua5.4 cannot load it (the ASan runtime must come first): what needs plain
-- lua5.4 is for make test.
local SANITIZED = (os.getenv("CNNLAB_BIN") or ""):find("asan", 1, true) ~= nil

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Runs a shell command; returns ok and its output (stdout and stderr).
local function sh(cmd)
  local out = tmp .. "/out"
  local ok = os.execute("(" .. cmd .. ") >" .. out .. " 2>&1")
  return ok == true, read(out) or ""
end

local function lines(text)
  local t = {}
  for line in text:gmatch("[^\n]+") do t[#t + 1] = line end
  return t
end

-- The files of lua/cnnlab/, relative to lua/ (cnnlab/init.lua, cnnlab/debias/erm.lua, ...).
local function lua_tree()
  local ok, out = sh("cd lua && find cnnlab -type f ! -name '.*' ! -name '*~' | LC_ALL=C sort")
  assert(ok, out)
  return lines(out)
end

-- Files (not folders) under dir, relative to it, sorted.
local function files_under(dir)
  local _, out = sh("cd " .. dir .. " 2>/dev/null && find . -type f | cut -c3- | LC_ALL=C sort")
  return lines(out)
end

local function assert_tree_installed(luadir)
  local want = lua_tree()
  assert.is_true(#want > 10, "lua/cnnlab/ looks empty")
  local subfolders = 0
  for _, f in ipairs(want) do
    local got = read(luadir .. "/" .. f)
    assert.truthy(got, luadir .. "/" .. f .. " was not installed")
    assert.equal(read("lua/" .. f), got, f .. " differs")
    if f:find("/.*/") then subfolders = subfolders + 1 end
  end
  assert.is_true(subfolders > 0, "no file of a subfolder (debias/, ...) in the tree")
end

-- Plain lua5.4 loads the C module and cnnlab, says from which files, and uses a module of a
-- subfolder (debias/, which lists its own folder).
local CHECK = [[lua5.4 -e 'local _, so = require "cnnlab.core"
local lab, init = require "cnnlab"
print(init) print(so)
print(lab.nn.Linear(3, 2)(lab.zeros(1, 3)).shape[2], #lab.debias.available() > 0)']]

local function assert_loaded_from(luadir, libdir, output)
  assert.equal(("%s/cnnlab/init.lua\n%s/cnnlab/core.so\n2\ttrue\n"):format(luadir, libdir), output)
end

describe("make install PREFIX=…", function()
  local prefix = tmp .. "/prefix"
  local ok, out = sh("make -s install PREFIX=" .. prefix)

  it("installs the interpreter, every file of lua/cnnlab/ and the C module", function()
    assert.is_true(ok, out)
    assert_tree_installed(prefix .. "/share/lua/5.4")
    assert.truthy(read(prefix .. "/lib/lua/5.4/cnnlab/core.so"))
    local ok2, got = sh("cd / && " .. prefix .. "/bin/cnnlab -e 'print((lab.ones(2, 2) * 3):sum():item())'")
    assert.is_true(ok2, got)
    assert.equal("12.0", got:match("^%s*(.-)%s*$"))
  end)

  it("prints the two lines with which plain lua5.4 finds it, and they work", function()
    assert.is_true(ok, out)
    local exports = {}
    for _, line in ipairs(lines(out)) do
      if line:find("^export LUA_C?PATH=") then exports[#exports + 1] = line end
    end
    assert.same({
      ("export LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;'"):format(prefix, prefix),
      ("export LUA_CPATH='%s/lib/lua/5.4/?.so;;'"):format(prefix),
    }, exports)
    if SANITIZED then return end
    -- without them, plain lua5.4 does not look there; with them, it loads it (from elsewhere)
    local _, found = sh("lua5.4 -E -e 'print(package.searchpath(\"cnnlab\", package.path))'")
    assert.falsy(found:find(prefix, 1, true), found)
    local ok2, got = sh("cd / && unset LUA_PATH_5_4 LUA_CPATH_5_4 && " .. table.concat(exports, " && ")
      .. " && " .. CHECK)
    assert.is_true(ok2, got)
    assert_loaded_from(prefix .. "/share/lua/5.4", prefix .. "/lib/lua/5.4", got)
  end)

  it("make uninstall with the same PREFIX leaves nothing", function()
    assert.is_true(ok, out)
    local ok2, got = sh("make -s uninstall PREFIX=" .. prefix)
    assert.is_true(ok2, got)
    assert.truthy(got:find("removed the", 1, true), got)
    assert.same({}, files_under(prefix))
    assert.is_nil(read(prefix), "the folder PREFIX, made by make install, is still there")
    ok2, got = sh("make -s uninstall PREFIX=" .. prefix)
    assert.is_true(ok2, got)
    assert.truthy(got:find("nothing to remove", 1, true), got)
  end)
end)

describe("make install with the default PREFIX (/usr/local), staged with DESTDIR", function()
  local dest = tmp .. "/dest"
  local ok, out = sh("make -s install DESTDIR=" .. dest)

  it("puts the modules where Debian's lua5.4 looks, and prints no variables to set", function()
    assert.is_true(ok, out)
    assert.falsy(out:find("export", 1, true), out)
    assert_tree_installed(dest .. "/usr/local/share/lua/5.4")
    if SANITIZED then return end
    -- lua5.4's own default paths (-E: whatever LUA_PATH says here), each moved under DESTDIR
    local ok2, paths = sh("lua5.4 -E -e 'print(package.path) print(package.cpath)'")
    assert.is_true(ok2, paths)
    local path, cpath = paths:match("^(.-)\n(.-)\n")
    local function staged(p)
      return (p:gsub("([^;]+)", function(entry)
        return entry:sub(1, 1) == "/" and dest .. entry or entry
      end))
    end
    assert.equal(dest .. "/usr/local/share/lua/5.4/cnnlab/init.lua",
      package.searchpath("cnnlab", staged(path)))
    assert.equal(dest .. "/usr/local/lib/lua/5.4/cnnlab/core.so",
      package.searchpath("cnnlab.core", staged(cpath)))
    local got
    ok2, got = sh(("cd / && LUA_PATH='%s' LUA_CPATH='%s' %s"):format(staged(path), staged(cpath), CHECK))
    assert.is_true(ok2, got)
    assert_loaded_from(dest .. "/usr/local/share/lua/5.4", dest .. "/usr/local/lib/lua/5.4", got)
  end)

  it("installing again removes what the previous install had and this one does not", function()
    assert.is_true(ok, out)
    local top = dest .. "/usr/local"
    local list = top .. "/share/cnnlab/installed-files"
    -- a module of an older tree, since moved (say, into a folder)
    local f = assert(io.open(top .. "/share/lua/5.4/cnnlab/moved_away.lua", "w"))
    f:write("return {}\n")
    f:close()
    f = assert(io.open(list, "a"))
    f:write("f share/lua/5.4/cnnlab/moved_away.lua\n")
    f:close()
    local ok2, got = sh("make -s install DESTDIR=" .. dest)
    assert.is_true(ok2, got)
    assert.truthy(got:find("removed 1 left by the previous install", 1, true), got)
    assert.is_nil(read(top .. "/share/lua/5.4/cnnlab/moved_away.lua"))
    assert.falsy(read(list):find("moved_away", 1, true))
  end)

  it("make uninstall removes its files and keeps a file it did not install", function()
    assert.is_true(ok, out)
    local mine = dest .. "/usr/local/share/lua/5.4/cnnlab/debias/mine.lua"
    local f = assert(io.open(mine, "w"))
    f:write("return {}\n")
    f:close()
    local ok2, got = sh("make -s uninstall DESTDIR=" .. dest)
    assert.is_true(ok2, got)
    assert.truthy(got:find("kept", 1, true), got)
    assert.same({"usr/local/share/lua/5.4/cnnlab/debias/mine.lua"}, files_under(dest))
  end)
end)

describe("luarocks make", function()
  it("installs cnnlab into a rocks tree, and plain lua5.4 loads it through luarocks' path", function()
    if not sh("command -v luarocks") then
      pending("luarocks is not installed (apt-get install luarocks): the rockspec is not tested")
      return
    end
    if SANITIZED then
      pending("under the sanitizers plain lua5.4 cannot load the module luarocks builds: make test runs this")
      return
    end
    local rockspec = sh("ls cnnlab-*.rockspec") and select(2, sh("ls cnnlab-*.rockspec")):match("%S+")
    local tree = tmp .. "/rocks"
    -- --deps-mode=none: lua-cjson comes from Debian's lua-cjson, which luarocks does not see,
    -- and luarocks.org may be out of reach
    local ok, out = sh(("luarocks --lua-version=5.4 make --deps-mode=none --tree %s %s"):format(tree, rockspec))
    assert.is_true(ok, out)
    assert_tree_installed(tree .. "/share/lua/5.4")
    local ok2, got = sh(("cd / && unset LUA_PATH LUA_CPATH LUA_PATH_5_4 LUA_CPATH_5_4 && "
      .. "eval \"$(luarocks --lua-version=5.4 --tree %s path)\" && %s"):format(tree, CHECK))
    assert.is_true(ok2, got)
    assert_loaded_from(tree .. "/share/lua/5.4", tree .. "/lib/lua/5.4", got)
  end)
end)
