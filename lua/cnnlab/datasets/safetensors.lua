--- safetensors — your own images from safetensors files (SPEC §4's interchange format, what
-- any framework can write): one file per split, each holding
--   images  uint8 N×C×H×W (the bytes the network reads as byte/255)
--   labels  integer vector of N classes (int64 or int32; 0..classes−1)
--   bias    optional integer vector of N: the bias attribute (`colors`, as data.export writes
--           it, is read as the bias too)
--   index   optional integer vector of N: each sample's position in your source
--   --dataset safetensors --dataset-opt train=a.safetensors,hard=b.safetensors[,val=c.safetensors]
-- Without val the evaluation split stands in for the validation set. A missing or mis-shaped
-- tensor is an error naming the file and the tensor.
local core = require "cnnlab.core"

local M = {
  name = "safetensors",
  description = "your own images, labels and bias from safetensors files (one per split)",
  source = "your files",
  options = {train = "", val = "", hard = "", classes = 10},
}

local function shape_text(t) return table.concat(t.shape, "×") end

--- One split from path (what: the option naming it, for errors).
function M.read(path, what)
  local f = io.open(path, "rb")
  if not f then
    error(("safetensors: %s=%s: no such file"):format(what, path), 0)
  end
  f:close()
  local ok, t = pcall(core.load_safetensors, path)
  if not ok then error(("safetensors: %s=%s is not a safetensors file: %s"):format(what, path, t), 0) end
  local function fail(msg) error(("safetensors: %s (%s): %s"):format(path, what, msg), 0) end
  local images = t.images
  if not images then
    local names = {}
    for k in pairs(t) do names[#names + 1] = k end
    table.sort(names)
    fail(("has no tensor 'images' (it has: %s); expected images uint8 N×C×H×W, labels, "
      .. "optional bias"):format(#names > 0 and table.concat(names, ", ") or "none"))
  end
  if images:type() ~= "uint8" or images:dim() ~= 4 then
    fail(("images must be uint8 N×C×H×W, got %s %s%s"):format(images:type(), shape_text(images),
      images:dim() == 3 and " (one channel? reshape to N×1×H×W)" or ""))
  end
  local n = images:size(0)
  local function vector(key, required)
    local v = t[key]
    if v == nil then
      if required then fail(("has no tensor '%s' (one integer per image)"):format(key)) end
      return nil
    end
    if v:dim() ~= 1 or v:numel() ~= n then
      fail(("%s must be a vector of %d values (one per image), got %s"):format(key, n, shape_text(v)))
    end
    if v:type() == "float32" then fail(("%s must be integers (int64 or int32), got float32"):format(key)) end
    return v:long()
  end
  return {images = images, labels = vector("labels", true), bias = vector("bias") or vector("colors"),
    index = vector("index")}
end

function M.build(o)
  for _, k in ipairs({"train", "hard"}) do
    if o[k] == "" then
      error(("safetensors: --dataset-opt %s=FILE is required (train and hard; val optional)"):format(k), 0)
    end
  end
  return {train = M.read(o.train, "train"), hard = M.read(o.hard, "hard"),
    val = o.val ~= "" and M.read(o.val, "val") or nil}
end

return M
