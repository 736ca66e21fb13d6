-- `make install PREFIX=…` puts cnnlab, its Lua modules and the C module where an installed
-- interpreter and plain lua5.4 find them.
describe("make install", function()
  it("installs a cnnlab that runs outside the source tree, and a module plain lua5.4 loads", function()
    local prefix = os.tmpname()
    os.remove(prefix)
    local ok = os.execute(("make -s install PREFIX=%s >/dev/null 2>&1"):format(prefix))
    assert.is_true(ok == true or ok == 0, "make install failed")
    local cmd = ("cd / && %s/bin/cnnlab -e 'print((lab.ones(2, 2) * 3):sum():item())'"):format(prefix)
    local p = io.popen(cmd)
    local out = p:read("a")
    p:close()
    assert.equal("12.0", out:match("^%s*(.-)%s*$"))
    -- Under the sanitizers the installed C module is instrumented, and an uninstrumented
    -- lua5.4 cannot load it (the ASan runtime must come first); that half is for make test.
    if (os.getenv("CNNLAB_BIN") or ""):find("asan", 1, true) then
      os.execute("rm -rf " .. prefix)
      return
    end
    local lua = ("cd / && LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;' "
      .. "LUA_CPATH='%s/lib/lua/5.4/?.so;;' lua5.4 -e 'local lab = require \"cnnlab\"; "
      .. "print(lab.nn.Linear(3, 2)(lab.zeros(1, 3)).shape[2])'"):format(prefix, prefix, prefix)
    p = io.popen(lua .. " 2>&1")
    out = p:read("a")
    p:close()
    assert.equal("2", out:match("^%s*(.-)%s*$"))
    os.execute("rm -rf " .. prefix)
  end)
end)
