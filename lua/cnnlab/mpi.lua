--- cnnlab.mpi — ranks, all-reduce and broadcast over MPI, for data-parallel training and sweeps
-- (docs/mpi.md). `lab.mpi` in the interpreter.
--
--   mpirun -np 2 ./build-mpi/cnnlab script.lua ...      (cnnlab built with `make MPI=1`)
--
--   mpi.rank()  This process's rank in the world communicator, 0..K−1 (0 without MPI).
--   mpi.size()  The number K of processes in the job (1 without MPI).
--   mpi.local_size()  The number of the job's processes on this node (1 without MPI).
--   mpi.running()  True when MPI was started (the process runs under mpirun or srun).
--   mpi.is_root([comm])  True on rank 0, the rank that writes files and prints.
--   mpi.allreduce(t | {t1, t2, ...}[, op]) → first argument
--       Reduces a tensor, or a list of float32 tensors through ONE flat buffer, in place
--       across the ranks; op "sum" (default), "max" or "min". Float sums are identical on
--       every rank (with K > 2 rank 0's result is broadcast after the reduction).
--   mpi.allreduce_numbers({x, ...}[, op]) → {y, ...}  Reduces a list of Lua numbers across the ranks in double precision.
--   mpi.allreduce_grads(params[, numbers]) → numbers
--       Sums every p.grad of params (a missing grad counts as zeros) and the numbers across
--       the ranks in one all-reduce; returns the summed numbers.
--   mpi.broadcast(t | {t1, ...}[, root])  Copies rank root's values (default 0) into every rank's tensors, in place.
--   mpi.broadcast_parameters(model | {t1, ...}[, root])  Makes a model's parameters (or a list of tensors) identical on every rank: rank root's values.
--   mpi.broadcast_string(s[, root]) → s  Returns rank root's string on every rank (s may be nil except on root).
--   mpi.allgather(t) → tensor  Stacks every rank's t along dimension 0, in rank order.
--   mpi.barrier()  Waits until every rank reaches this call (sleeping, not spinning).
--   mpi.abort(msg[, code])  Prints msg and ends the whole job with exit code code (default 1).
--   mpi.stats([reset]) → {seconds =, cpu_seconds =, calls =, bytes =}
--       The wall and CPU time, calls and bytes spent in the collectives so far; reset
--       starts the counts again.
--   mpi.share(n[, rank, size]) → start, count  This rank's contiguous share of n items (positions 0..n−1).
--   mpi.split(t) → t:narrow(0, start, count) | nil  This rank's share of tensor t along dimension 0, or nil when it is empty.
--   mpi.points(n) → {i, ...}  The 1-based positions of n independent jobs this rank takes: rank+1, rank+1+K, ...
--   What scripts/mpi_compare.lua compares (no communication involved):
--   mpi.snapshot_steps(dir) → {step, ...}  The sorted steps of the dir/snapshot_<step>.safetensors files.
--   mpi.weight_difference(a, b) → max_rel, l2_rel, name
--       Compares two state dicts with the same names: the worst tensor's max |a − b| / max |a|,
--       the worst ‖a − b‖ / ‖a‖, and the name of the tensor with the worst max_rel ("-" when
--       none differs).
--
-- Without MPI (the default build, or the MPI build started without mpirun) everything still
-- works: rank 0 of 1, every reduction and broadcast returns its input unchanged, so scripts
-- need no special case. Two communicators: `mpi.world` (what the functions above use) and
-- `mpi.self`, always one process — what each point of a sweep trains with, so that
-- train.fit{comm = lab.mpi.self} trains alone even inside an MPI job.
local core = require "cnnlab.core"

local mpi = {}

local binding = core.mpi_binding -- nil in the default build (src/lmpi.c without CNNLAB_MPI)

--- True when this cnnlab was built with MPI (`make MPI=1`).
mpi.available = binding ~= nil

-- The default build started by mpirun with K > 1 processes would train K independent copies
-- that overwrite each other's files; say so instead.
local function launcher_size()
  for _, name in ipairs({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}) do
    local v = tonumber(os.getenv(name) or "")
    if v and (name ~= "SLURM_NTASKS" or os.getenv("PMI_RANK") or os.getenv("PMIX_RANK")) then
      return math.tointeger(v) or 1
    end
  end
  return 1
end

if not binding and launcher_size() > 1 then
  error(("cnnlab.mpi: this process was started by mpirun as one of %d, but this cnnlab was " ..
    "built without MPI, so the processes cannot talk to each other. Build the MPI version " ..
    "with `make MPI=1` (needs Debian's libopenmpi-dev and openmpi-bin) and run " ..
    "./build-mpi/cnnlab"):format(launcher_size()), 0)
end

local function is_list(x)
  return type(x) == "table" and not core.is_tensor(x)
end

local function check_op(fn, op)
  if op ~= nil and op ~= "sum" and op ~= "max" and op ~= "min" then
    error(("mpi.%s: argument 2 (op) must be \"sum\", \"max\" or \"min\", got %s")
      :format(fn, type(op) == "string" and ('"' .. op .. '"') or tostring(op)), 3)
  end
end

local function check_list(fn, list, float_only)
  if #list == 0 then
    error(("mpi.%s: argument 1 must be a tensor or a non-empty list of tensors, got an empty " ..
      "table"):format(fn), 3)
  end
  for i, t in ipairs(list) do
    if not core.is_tensor(t) then
      error(("mpi.%s: element %d of the list must be a tensor, got %s"):format(fn, i, type(t)), 3)
    end
    if float_only and t.dtype ~= "float32" then
      error(("mpi.%s: element %d of the list is %s; a list travels as one float32 buffer, so " ..
        "every tensor must be float32 (reduce other types one tensor at a time)")
        :format(fn, i, t.dtype), 3)
    end
  end
end

local function check_tensor_or_list(fn, x)
  if core.is_tensor(x) then return end
  if is_list(x) then return end
  error(("mpi.%s: argument 1 must be a tensor or a list of tensors, got %s"):format(fn, type(x)), 3)
end

--- One flat float32 buffer holding every tensor of list (then `extra`, a list of numbers).
local function pack(list, extra)
  local parts = {}
  for i, t in ipairs(list) do parts[i] = t:reshape(-1) end
  if extra and #extra > 0 then parts[#parts + 1] = core.tensor(extra) end
  return core.cat(parts, 0)
end

--- Copies the flat buffer back into the tensors of list, in place (also into tensors that
-- require grad: parameters); returns the offset after the last one.
local function unpack_into(flat, list)
  local off = 0
  core.no_grad(function()
    for _, t in ipairs(list) do
      local n = t:numel()
      t:copy_(flat:narrow(0, off, n):reshape(t.shape))
      off = off + n
    end
  end)
  return off
end

-- ------------------------------------------------------------------ communicators

local Comm = {}
Comm.__index = Comm

--- The serial communicator: one process, identity collectives.
local Self = setmetatable({name = "self"}, Comm)

function Self.rank() return 0 end
function Self.size() return 1 end
function Self.local_size() return 1 end
function Self.running() return false end
function Self._allreduce(t) return t end
function Self._broadcast(t) return t end
function Self._allreduce_numbers(list) local out = {} for i, v in ipairs(list) do out[i] = v end return out end
function Self._broadcast_string(s) return s end
function Self._allgather(t) return t:clone() end
function Self.barrier() end
function Self.stats() return {seconds = 0, cpu_seconds = 0, calls = 0, bytes = 0} end
function Self.abort(msg, code)
  io.stdout:flush()
  io.stderr:write("cnnlab: ", tostring(msg or "aborted"), "\n")
  os.exit(code or 1)
end

--- MPI_COMM_WORLD (or the serial communicator's behaviour when MPI is not running).
local World = setmetatable({name = "world"}, Comm)
if binding then
  World.rank, World.size, World.local_size = binding.rank, binding.size, binding.local_size
  World.running = binding.initialized
  World._allreduce, World._broadcast = binding.allreduce, binding.broadcast
  World._allreduce_numbers, World._broadcast_string = binding.allreduce_numbers,
    binding.broadcast_string
  World._allgather, World.barrier, World.stats = binding.allgather, binding.barrier, binding.stats
  World.abort = binding.abort
else
  for k, v in pairs(Self) do if k ~= "name" then World[k] = v end end
end

function Comm.is_root(c) c = c or mpi.world return c.rank() == 0 end

-- The methods below take the communicator as `self` but also work called with a dot on
-- mpi (mpi.allreduce(t) uses mpi.world).
local function comm_of(c)
  if getmetatable(c) == Comm then return c end
  return nil
end

-- With more than two ranks MPI may add the ranks' values in a different order on each rank
-- (recursive doubling), so the sums could differ in the last bit from rank to rank, and
-- parameters updated with them would drift apart; a float sum is then followed by a broadcast
-- of rank 0's result (one more message of the same size). With two ranks a + b = b + a.
local function same_everywhere(c, flat, op)
  if c.size() > 2 and (op == nil or op == "sum") and flat.dtype == "float32" then
    c._broadcast(flat, 0)
  end
end

--- allreduce(t | {t, ...}[, op]): see the header. Returns its first argument.
function Comm.allreduce(c, x, op)
  check_tensor_or_list("allreduce", x)
  check_op("allreduce", op)
  if is_list(x) then check_list("allreduce", x, true) end
  if c.size() == 1 then return x end
  if core.is_tensor(x) then
    if x:is_contiguous() then
      c._allreduce(x, op)
      same_everywhere(c, x, op)
      return x
    end
    local tmp = c._allreduce(x:contiguous(), op)
    same_everywhere(c, tmp, op)
    core.no_grad(function() x:copy_(tmp) end)
    return x
  end
  local flat = pack(x)
  c._allreduce(flat, op)
  same_everywhere(c, flat, op)
  unpack_into(flat, x)
  return x
end

function Comm.allreduce_numbers(c, list, op)
  if type(list) ~= "table" then
    error(("mpi.allreduce_numbers: argument 1 must be a list of numbers, got %s"):format(type(list)), 2)
  end
  check_op("allreduce_numbers", op)
  return c._allreduce_numbers(list, op)
end

--- Sums the gradients of params (a list of tensors; p.grad == nil counts as zeros) and the
-- numbers in `extra` across the ranks with ONE all-reduce of one flat float32 buffer. Each
-- p.grad then is the sum (a view into the buffer); a parameter that had no gradient on any
-- rank keeps none (as in one process, the optimizer then leaves it alone). Returns the summed
-- numbers (float32 precision: fine for counts up to 2^24 and for running losses).
function Comm.allreduce_grads(c, params, extra)
  if type(params) ~= "table" then
    error(("mpi.allreduce_grads: argument 1 must be a list of parameters, got %s"):format(type(params)), 2)
  end
  extra = extra or {}
  if c.size() == 1 then
    local out = {}
    for i, v in ipairs(extra) do out[i] = v end
    return out
  end
  local grads, tail = {}, {}
  for i, v in ipairs(extra) do tail[i] = v end
  for i, p in ipairs(params) do
    if not core.is_tensor(p) then
      error(("mpi.allreduce_grads: parameter %d is a %s, not a tensor"):format(i, type(p)), 2)
    end
    local g = p.grad
    grads[i] = g or core.zeros(p.shape)
    tail[#tail + 1] = g and 1 or 0 -- how many ranks had a gradient for it
  end
  local flat = pack(grads, tail)
  c._allreduce(flat, "sum")
  same_everywhere(c, flat, "sum")
  local off = 0
  local base = flat:numel() - #tail
  for i, p in ipairs(params) do
    local n = p:numel()
    if flat:get(base + #extra + i - 1) > 0 then
      p.grad = flat:narrow(0, off, n):reshape(p.shape)
    end
    off = off + n
  end
  local out = {}
  for i = 1, #extra do out[i] = flat:get(base + i - 1) end
  return out
end

--- broadcast(t | {t, ...}[, root]): root's values into every rank's tensors, in place.
function Comm.broadcast(c, x, root)
  check_tensor_or_list("broadcast", x)
  root = root or 0
  if math.type(root) ~= "integer" or root < 0 or root >= c.size() then
    error(("mpi.broadcast: argument 2 (root) must be a rank in 0..%d, got %s")
      :format(c.size() - 1, tostring(root)), 2)
  end
  if is_list(x) then check_list("broadcast", x, true) end
  if c.size() == 1 then return x end
  if core.is_tensor(x) then
    local tmp = x:contiguous()
    c._broadcast(tmp, root)
    core.no_grad(function() x:copy_(tmp) end)
    return x
  end
  local flat = pack(x)
  c._broadcast(flat, root)
  unpack_into(flat, x)
  return x
end

--- Makes the parameters of a model (or a list of tensors) identical on every rank: rank
-- root's values.
function Comm.broadcast_parameters(c, model_or_list, root)
  local list = model_or_list
  if type(model_or_list) == "table" and model_or_list.parameters then list = model_or_list:parameters() end
  if #list == 0 then return model_or_list end
  c:broadcast(list, root)
  return model_or_list
end

function Comm.broadcast_string(c, s, root)
  if s ~= nil and type(s) ~= "string" then
    error(("mpi.broadcast_string: argument 1 must be a string or nil, got %s"):format(type(s)), 2)
  end
  return c._broadcast_string(s, root or 0)
end

function Comm.allgather(c, t)
  if not core.is_tensor(t) then
    error(("mpi.allgather: argument 1 must be a tensor, got %s"):format(type(t)), 2)
  end
  return c._allgather(t:contiguous())
end

--- The contiguous share of n items (positions 0..n−1) that `rank` of `size` takes: start and
-- count. Shares differ by at most one item; the first n % size ranks take one more.
function Comm.share(c, n, rank, size)
  if math.type(n) ~= "integer" or n < 0 then
    error(("mpi.share: argument 1 (n) must be a non-negative integer, got %s"):format(tostring(n)), 2)
  end
  size = size or c.size()
  rank = rank or c.rank()
  if math.type(size) ~= "integer" or size < 1 then
    error(("mpi.share: size must be a positive integer, got %s"):format(tostring(size)), 2)
  end
  if math.type(rank) ~= "integer" or rank < 0 or rank >= size then
    error(("mpi.share: rank must be in 0..%d, got %s"):format(size - 1, tostring(rank)), 2)
  end
  local start = n * rank // size
  return start, n * (rank + 1) // size - start
end

--- This rank's share of a tensor along dimension 0 (a global batch of positions, images,
-- ...), or nil when the share is empty (fewer items than ranks).
function Comm.split(c, t)
  if not core.is_tensor(t) or t.ndim < 1 then
    error(("mpi.split: argument 1 must be a tensor with at least one dimension, got %s")
      :format(core.is_tensor(t) and "a 0-d tensor" or type(t)), 2)
  end
  local start, count = c:share(t:size(0))
  if count == 0 then return nil end
  return t:narrow(0, start, count)
end

--- The 1-based positions of n independent jobs this rank runs: rank+1, rank+1+K, ...
function Comm.points(c, n)
  if math.type(n) ~= "integer" or n < 0 then
    error(("mpi.points: argument 1 (n) must be a non-negative integer, got %s"):format(tostring(n)), 2)
  end
  local out = {}
  for i = c.rank() + 1, n, c.size() do out[#out + 1] = i end
  return out
end

function mpi.snapshot_steps(dir)
  local steps = {}
  for _, f in ipairs(core.listdir(dir) or {}) do
    local s = f:match("^snapshot_(%d+)%.safetensors$")
    if s then steps[#steps + 1] = math.tointeger(tonumber(s)) end
  end
  table.sort(steps)
  return steps
end

function mpi.weight_difference(a, b)
  local worst, worst_l2, where = 0, 0, "-"
  for name, t in pairs(a) do
    local d = t - b[name]
    local rel = d:abs():max():item() / math.max(t:abs():max():item(), 1e-30)
    local l2 = math.sqrt(d:square():sum():item() / math.max(t:square():sum():item(), 1e-30))
    if rel > worst then worst, where = rel, name end
    worst_l2 = math.max(worst_l2, l2)
  end
  return worst, worst_l2, where
end

mpi.world, mpi.self = World, Self

-- mpi.f(...) is mpi.world:f(...).
for _, name in ipairs({"allreduce", "allreduce_numbers", "allreduce_grads", "broadcast",
  "broadcast_parameters", "broadcast_string", "allgather", "share", "split", "points", "is_root"}) do
  mpi[name] = function(first, ...)
    if comm_of(first) then return Comm[name](first, ...) end
    return Comm[name](World, first, ...)
  end
end
for _, name in ipairs({"rank", "size", "local_size", "running", "barrier", "abort", "stats"}) do
  mpi[name] = function(...) return World[name](...) end
end

return mpi
