--- cnnlab.plugins — the one way a folder of plug-ins is found and loaded, as debias methods
-- are: a plug-in is one Lua file returning a table; shipped ones live in a folder next to its
-- registry (lua/cnnlab/KIND/NAME.lua) and are found by name, any other file by its path.
--
--   local reg = plugins.folder{kind = "attack", dir = <the registry's folder>,
--                              check = function(t, name) → nil or a message}
--   reg.available() → sorted names of the shipped plug-ins (init.lua, the registry, excluded)
--   reg.load(name_or_path) → the plug-in's table; its name defaults to the file's base name
-- A name containing "/" or ending in ".lua" is a path; anything else a shipped name.
local core = require "cnnlab.core"

local plugins = {}

--- The folder of the file that called this (a registry's init.lua): where its plug-ins live.
function plugins.caller_dir(level)
  local src = debug.getinfo((level or 1) + 1, "S").source
  return src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/[^/]*$") or "."
end

--- The registry of the plug-ins of one kind in folder o.dir: {available =, load =} (see the
-- header); o.check(t, name) returns nil or what is wrong with a loaded table.
function plugins.folder(o)
  local kind, dir, check = o.kind, o.dir, o.check
  local reg = {}

  --- The sorted names of the shipped plug-ins of this kind (the registry's init.lua excluded).
  function reg.available()
    local names = {}
    for _, file in ipairs(core.listdir(dir) or {}) do
      local name = file:match("^(.+)%.lua$")
      if name and name ~= "init" then names[#names + 1] = name end
    end
    table.sort(names) -- listdir's order is the file system's: sorting makes runs repeatable
    return names
  end

  --- Loads a plug-in by shipped name or by path to a .lua file and returns its table, checked,
  -- with a file-safe name (default: the file's base name).
  function reg.load(name_or_path)
    if type(name_or_path) ~= "string" or name_or_path == "" then
      error(("%s: a %s name or a path to a .lua file is required, got %s"):format(kind, kind,
        type(name_or_path) == "string" and "an empty string" or type(name_or_path)), 2)
    end
    local chunk, err
    local is_path = name_or_path:find("/", 1, true) or name_or_path:match("%.lua$")
    if is_path then
      chunk, err = loadfile(name_or_path)
      if not chunk then
        error(("%s: cannot load %s file %s: %s"):format(kind, kind, name_or_path, err), 2)
      end
    else
      chunk = name_or_path ~= "init" and loadfile(dir .. "/" .. name_or_path .. ".lua")
      if not chunk then
        error(("%s: unknown %s '%s' (available: %s; or give a path to a .lua file)"):format(kind,
          kind, name_or_path, table.concat(reg.available(), ", ")), 2)
      end
    end
    local ok, t = pcall(chunk)
    if not ok then error(("%s: %s raised while loading: %s"):format(kind, name_or_path, t), 2) end
    if type(t) ~= "table" then
      error(("%s: %s must return a %s table, got %s"):format(kind, name_or_path, kind, type(t)), 2)
    end
    -- names end up in file and folder names: made safe ("../x" cannot leave its folder)
    t.name = require("cnnlab.util").safe_name(t.name or name_or_path:match("([^/]+)%.lua$")
      or name_or_path)
    local msg = check and check(t, name_or_path)
    if msg then error(("%s: %s %s"):format(kind, name_or_path, msg), 2) end
    return t
  end

  return reg
end

return plugins
