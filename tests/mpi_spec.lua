-- cnnlab.mpi and data-parallel training (docs/mpi.md).
--
-- Part 1 runs everywhere: the serial behaviour of lab.mpi (rank 0 of 1, identity collectives,
-- the share arithmetic the trainer splits batches with).
-- Part 2 needs the MPI build (`make MPI=1` → build-mpi/cnnlab, or CNNLAB_MPI_BIN) and mpirun;
-- without them it is skipped with a message saying so. It runs real 2-rank jobs:
--   * the collectives on 2 ranks (flat-buffer all-reduce, missing gradients, broadcast,
--     all-gather of uneven sizes, strings);
--   * a 2-rank training on generated digits, against the same run in one process: with SGD
--     the weights agree to 1e-5 (relative to each tensor's largest entry) and the accuracies
--     exactly; with Adam, whose normalised step turns summation-order noise in near-zero
--     gradients into ±lr steps, the accuracies agree within 0.5 point (and the weights as
--     closely as one process with another thread count agrees with itself);
--     only rank 0 prints progress and writes the files;
--   * a rank that fails (an error on rank 1 only, while rank 0 waits in an all-reduce) ends
--     the job within the timeout, with its message printed;
--   * the default build started by mpirun refuses with a clear message;
--   * scripts/sweep.lua spreads its points over 2 ranks and rank 0 writes the summary.
local lab = require "cnnlab"
local util = lab.util

local MPI_BIN = os.getenv("CNNLAB_MPI_BIN") or "./build-mpi/cnnlab"
local PLAIN_BIN = os.getenv("CNNLAB_PLAIN_BIN") or "./build/cnnlab"
local MPIRUN = "timeout 60 mpirun --oversubscribe --allow-run-as-root"

local function q(s) return util.shell_quote(s) end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  os.remove(path)
  return s
end

local function write_tmp(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local tmpdir = require("tests.helpers").tmpdir

-- Runs a shell command line; returns {code, out, err, seconds}.
local function sh(cmd)
  local out, err = os.tmpname(), os.tmpname()
  local t0 = lab.now()
  local _, _, code = os.execute(("%s </dev/null >%s 2>%s"):format(cmd, out, err))
  return {code = code, out = slurp(out), err = slurp(err), seconds = lab.now() - t0}
end

local function mpi_ready()
  if not util.exists(MPI_BIN) then
    return false, ("no MPI build at %s (build it with `make MPI=1`; needs Debian's " ..
      "libopenmpi-dev and openmpi-bin)"):format(MPI_BIN)
  end
  if not os.execute("command -v mpirun >/dev/null 2>&1") then
    return false, "mpirun is not installed (Debian package openmpi-bin)"
  end
  local r = sh(q(MPI_BIN) .. " -e 'print(lab.mpi.available)'")
  if not r.out:match("true") then
    return false, ("%s has no MPI binding (core.mpi_binding missing: is clb_open_mpi(L) " ..
      "called from luaopen_cnnlab_core in src/lcore.c?)"):format(MPI_BIN)
  end
  return true
end

-- ------------------------------------------------------------------ part 1: one process

describe("lab.mpi in one process", function()
  local mpi = lab.mpi

  it("is rank 0 of 1, and its collectives return their input", function()
    assert.are.equal(0, mpi.rank())
    assert.are.equal(1, mpi.size())
    assert.is_true(mpi.is_root())
    local a, b = lab.tensor({1, 2, 3}), lab.tensor({{4, 5}})
    local list = mpi.allreduce({a, b})
    assert.are.equal(a, list[1])
    assert.are.same({1, 2, 3}, a:totable())
    assert.are.same({{4, 5}}, b:totable())
    assert.are.same({3, 4.5}, mpi.allreduce_numbers({3, 4.5}))
    assert.are.same({1, 2, 3}, mpi.broadcast(lab.tensor({1, 2, 3})):totable())
    assert.are.equal("x", mpi.broadcast_string("x"))
    assert.are.same({7, 8}, mpi.allgather(lab.tensor({7, 8})):totable())
    mpi.barrier()
    local p = lab.zeros({2}, {requires_grad = true})
    p.grad = lab.tensor({1, 2})
    assert.are.same({5, 6}, mpi.allreduce_grads({p}, {5, 6}))
    assert.are.same({1, 2}, p.grad:totable())
    assert.are.equal(mpi.self, mpi.self)
    assert.are.equal(1, mpi.self.size())
  end)

  it("splits n items into contiguous shares that differ by at most one", function()
    assert.are.same({0, 64}, {mpi.share(128, 0, 2)})
    assert.are.same({64, 64}, {mpi.share(128, 1, 2)})
    -- 3 items over 2 ranks: rank 0 takes 1, rank 1 takes 2; 1 item: rank 0 takes none
    assert.are.same({0, 1}, {mpi.share(3, 0, 2)})
    assert.are.same({1, 2}, {mpi.share(3, 1, 2)})
    assert.are.same({0, 0}, {mpi.share(1, 0, 2)})
    assert.are.same({0, 1}, {mpi.share(1, 1, 2)})
    for _, n in ipairs({0, 1, 7, 10, 129}) do
      for k = 1, 5 do
        local next_start = 0
        for r = 0, k - 1 do
          local s, c = mpi.share(n, r, k)
          assert.are.equal(next_start, s)
          assert.is_true(c == n // k or c == n // k + 1)
          next_start = s + c
        end
        assert.are.equal(n, next_start)
      end
    end
    assert.are.same({1, 2, 3}, mpi.points(3))
    assert.are.same({10, 11, 12}, mpi.split(lab.tensor({10, 11, 12})):totable())
  end)

  it("checks its arguments, naming the function and what came", function()
    assert.has_error(function() mpi.allreduce(42) end,
      "mpi.allreduce: argument 1 must be a tensor or a list of tensors, got number")
    assert.has_error(function() mpi.allreduce(lab.zeros(2), "prod") end,
      'mpi.allreduce: argument 2 (op) must be "sum", "max" or "min", got "prod"')
    assert.has_error(function() mpi.allreduce({lab.zeros(2), lab.zeros(2, {dtype = "int64"})}) end,
      "mpi.allreduce: element 2 of the list is int64; a list travels as one float32 buffer, so " ..
      "every tensor must be float32 (reduce other types one tensor at a time)")
    assert.has_error(function() mpi.allreduce({}) end,
      "mpi.allreduce: argument 1 must be a tensor or a non-empty list of tensors, got an empty table")
    assert.has_error(function() mpi.share(-1) end,
      "mpi.share: argument 1 (n) must be a non-negative integer, got -1")
    assert.has_error(function() mpi.share(4, 2, 2) end, "mpi.share: rank must be in 0..1, got 2")
    assert.has_error(function() mpi.broadcast(lab.zeros(2), 1) end,
      "mpi.broadcast: argument 2 (root) must be a rank in 0..0, got 1")
  end)
end)

-- ------------------------------------------------------------------ part 2: MPI jobs

local ready, why = mpi_ready()

describe("what mpi_compare compares (snapshot_steps, weight_difference)", function()
  it("lists the saved steps in order, ignoring other files", function()
    local dir = os.tmpname()
    os.remove(dir)
    lab.util.mkdir_p(dir)
    for _, f in ipairs({"snapshot_10.safetensors", "snapshot_2.safetensors", "snapshot_1.safetensors",
      "result.json", "snapshot_x.safetensors"}) do lab.util.write_file(dir .. "/" .. f, "") end
    assert.same({1, 2, 10}, lab.mpi.snapshot_steps(dir))
    assert.same({}, lab.mpi.snapshot_steps(dir .. "/none"))
    os.execute("rm -rf " .. lab.util.shell_quote(dir))
  end)

  it("gives the worst relative differences and the tensor they come from", function()
    local a = {w = lab.tensor({1, -2, 4}), b = lab.tensor({10, 0})}
    local b = {w = lab.tensor({1, -2, 3}), b = lab.tensor({10, 0.5})}
    local rel, l2, where = lab.mpi.weight_difference(a, b)
    assert.equal("w", where)                            -- 1/4 beats 0.5/10
    assert.is_true(math.abs(rel - 0.25) < 1e-7)
    assert.is_true(math.abs(l2 - 1 / math.sqrt(21)) < 1e-7) -- w: 1/√21 > b: 0.05
    assert.same({0, 0, "-"}, {lab.mpi.weight_difference(a, a)})
  end)
end)

describe("MPI (2 ranks)", function()
  if not ready then
    it("is skipped", function()
      print("\n  tests/mpi_spec.lua: MPI part skipped: " .. why)
      pending("MPI part skipped: " .. why)
    end)
    return
  end

  local function mpirun(np, script_text, args, opts)
    local script = write_tmp(script_text)
    local cmd = ("%s %s -np %d %s %s %s"):format(MPIRUN, opts and opts.tag and "--tag-output" or "",
      np, q(opts and opts.bin or MPI_BIN), q(script), args or "")
    local r = sh(cmd)
    os.remove(script)
    return r
  end

  it("all-reduces a list through one buffer, fills missing gradients, broadcasts, gathers", function()
    local r = mpirun(2, [[
      local mpi = lab.mpi
      local r, k = mpi.rank(), mpi.size()
      assert(k == 2 and mpi.running(), "expected 2 running ranks")
      local a, b = lab.tensor({1, 2, 3}) * (r + 1), lab.tensor({{10, 20}}) * (r + 1)
      local before = mpi.stats().calls
      mpi.allreduce({a, b})
      assert(mpi.stats().calls == before + 1, "a list must take exactly one MPI call")
      assert(a:get(0) == 3 and a:get(1) == 6 and a:get(2) == 9, "sum a")
      assert(b:get(0, 1) == 60, "sum b")
      local m = lab.tensor({r, -r}, {dtype = "int64"})
      mpi.allreduce(m, "max")
      assert(m:get(0) == 1 and m:get(1) == 0, "max")
      -- gradients: rank 0 has one for p1 only; rank 1 for both; p3 has none anywhere
      local p1, p2, p3 = lab.zeros({2}, {requires_grad = true}), lab.zeros({3}, {requires_grad = true}),
        lab.zeros({1}, {requires_grad = true})
      p1.grad = lab.full({2}, r + 1)
      if r == 1 then p2.grad = lab.full({3}, 5) end
      local s = mpi.allreduce_grads({p1, p2, p3}, {r + 0.5, 10})
      assert(s[1] == 2 and s[2] == 20, "extra numbers")
      assert(p1.grad:get(0) == 3 and p2.grad:get(2) == 5 and p3.grad == nil, "grads")
      local w = lab.full({4}, r + 7, {requires_grad = true})
      mpi.broadcast_parameters({w}, 1)
      assert(w:get(3) == 8, "broadcast from rank 1")
      assert(mpi.broadcast_string(r == 0 and "from root" or nil) == "from root", "string")
      local g = mpi.allgather(lab.arange(r + 1):reshape(r + 1, 1))
      assert(g:numel() == 3 and g:get(0, 0) == 0 and g:get(1, 0) == 0 and g:get(2, 0) == 1,
        "allgather uneven")
      local idx = mpi.split(lab.arange(5))
      assert(idx:numel() == (r == 0 and 2 or 3), "split")
      print(("rank %d ok"):format(r))
    ]])
    assert.are.equal(0, r.code, r.out .. r.err)
    assert.truthy(r.out:find("rank 0 ok", 1, true))
    assert.truthy(r.out:find("rank 1 ok", 1, true))
  end)

  -- Trains the seed CNN for one epoch on 640 generated digits with batch 91, so that the last
  -- batch (3 digits) splits unevenly over 2 ranks (1 + 2).
  local FIT = [[
    local out, optimizer, micro = arg[1], arg[2], math.tointeger(tonumber(arg[3] or "1"))
    lab.set_threads(1)
    local source = lab.data.generated{n = 800, n_test = 160, seed = 3}
    local sets = lab.data.colored_mnist{seed = 3, source = source}
    local r = lab.train.fit{method = lab.debias.load("erm"), data = sets, epochs = 1, batch = 91,
      optimizer = optimizer, lr = optimizer == "sgd" and 0.05 or nil,
      momentum = optimizer == "sgd" and 0.9 or nil, seed = 5, out = out,
      progress = true, micro_batches = micro}
    if lab.mpi.rank() == 0 then
      local ev = lab.metrics.evaluate(r.model, sets.hard)
      lab.util.write_json(out .. "/result.json", {ranks = lab.mpi.size(), steps = r.steps,
        loss = r.history[1].loss, train_acc = r.history[1].train_acc,
        val_acc = r.history[1].val_acc, hard_acc = ev.acc})
    end
    print(("rank %d of %d done"):format(lab.mpi.rank(), lab.mpi.size()))
  ]]

  local function compare(dir1, dir2)
    local a = lab.load_safetensors(dir1 .. "/model.safetensors")
    local b = lab.load_safetensors(dir2 .. "/model.safetensors")
    local worst, n = 0, 0
    for name, t in pairs(a) do
      n = n + 1
      local rel = (t - b[name]):abs():max():item() / t:abs():max():item()
      worst = math.max(worst, rel)
    end
    assert.are.equal(8, n)
    local ra = util.json_decode(util.read_file(dir1 .. "/result.json"))
    local rb = util.json_decode(util.read_file(dir2 .. "/result.json"))
    return worst, ra, rb
  end

  local function train_pair(optimizer, micro)
    local d1, d2 = tmpdir(), tmpdir()
    local script = write_tmp(FIT)
    local one = sh(("%s %s %s %s %d"):format(q(MPI_BIN), q(script), q(d1), optimizer, micro or 1))
    os.remove(script)
    assert.are.equal(0, one.code, one.out .. one.err)
    local two = mpirun(2, FIT, q(d2) .. " " .. optimizer, {tag = true})
    assert.are.equal(0, two.code, two.out .. two.err)
    return d1, d2, two
  end

  it("trains on 2 ranks to the weights of one process (SGD: ≤ 1e-5), rank 0 alone reporting", function()
    local d1, d2, two = train_pair("sgd")
    local worst, ra, rb = compare(d1, d2)
    assert.are.equal(1, ra.ranks)
    assert.are.equal(2, rb.ranks)
    assert.are.equal(ra.steps, rb.steps)
    assert.is_true(worst <= 1e-5, ("max relative weight difference %.3g > 1e-5"):format(worst))
    assert.is_true(math.abs(ra.loss - rb.loss) <= 1e-5 * math.abs(ra.loss), "epoch loss")
    assert.are.equal(ra.train_acc, rb.train_acc)
    assert.are.equal(ra.val_acc, rb.val_acc)
    assert.are.equal(ra.hard_acc, rb.hard_acc)
    -- progress from rank 0 only (mpirun --tag-output prefixes every line with [job,rank]; the
    -- ranks' output is a pseudo-terminal, so the line may start with "\r\27[K")
    assert.truthy(two.out:find("%[1,0%]<stdout>:[^\n]-epoch 1/1"), two.out)
    assert.falsy(two.out:find("%[1,1%]<stdout>:[^\n]-epoch"), two.out)
    assert.truthy(two.out:find("%[1,1%]<stdout>:rank 1 of 2 done"), two.out)
    assert.truthy(two.out:find("2 ranks", 1, true), two.out)
  end)

  it("trains on 2 ranks with Adam to the accuracies of one process (within 0.5 point)", function()
    local d1, d2 = train_pair("adam")
    local worst, ra, rb = compare(d1, d2)
    assert.is_true(worst < 0.05, ("max relative weight difference %.3g"):format(worst))
    assert.is_true(math.abs(ra.val_acc - rb.val_acc) <= 0.5, ("val %g vs %g"):format(ra.val_acc, rb.val_acc))
    assert.is_true(math.abs(ra.hard_acc - rb.hard_acc) <= 0.5, ("hard %g vs %g"):format(ra.hard_acc, rb.hard_acc))
    assert.is_true(math.abs(ra.loss - rb.loss) <= 1e-3 * ra.loss, "epoch loss")
  end)

  it("trains on 2 ranks with Adam to exactly the weights of one process splitting its batches in two", function()
    -- micro_batches = 2: the one process sums the two halves' gradients as the all-reduce does
    local d1, d2 = train_pair("adam", 2)
    local worst, ra, rb = compare(d1, d2)
    assert.are.equal(0, worst, ("max relative weight difference %.3g, expected 0"):format(worst))
    -- the reported loss travels in the all-reduce's float32 buffer: equal to float32 precision
    assert.is_true(math.abs(ra.loss - rb.loss) <= 1e-6 * ra.loss, ("loss %.10g vs %.10g"):format(ra.loss, rb.loss))
    assert.are.equal(ra.val_acc, rb.val_acc)
    assert.are.equal(ra.hard_acc, rb.hard_acc)
  end)

  it("ends the whole job with the message when one rank fails, instead of hanging", function()
    local r = mpirun(2, [[
      local mpi = lab.mpi
      if mpi.rank() == 1 then error("deliberate failure on rank 1") end
      local t = lab.ones(3)
      mpi.allreduce(t) -- rank 0 waits here for a rank that will never come
      print("rank 0 passed the all-reduce")
    ]])
    assert.is_true(r.seconds < 50, ("took %.0f s: the job hung until the timeout"):format(r.seconds))
    assert.are_not.equal(0, r.code)
    assert.are_not.equal(124, r.code) -- timeout's status
    assert.truthy(r.err:find("deliberate failure on rank 1", 1, true), r.err)
    assert.truthy(r.err:find("MPI rank 1 of 2", 1, true), r.err)
    assert.falsy(r.out:find("passed the all-reduce", 1, true))
  end)

  it("refuses to run the default build under mpirun, saying why", function()
    if not util.exists(PLAIN_BIN) then
      pending("no default build at " .. PLAIN_BIN)
      return
    end
    local r = mpirun(2, "print(lab.mpi.size())", "", {bin = PLAIN_BIN})
    assert.are_not.equal(0, r.code)
    assert.truthy(r.err:find("built without MPI", 1, true), r.err)
    assert.truthy(r.err:find("make MPI=1", 1, true), r.err)
  end)

  it("spreads a sweep's points over the ranks; rank 0 summarises", function()
    local out = tmpdir()
    local r = sh(("%s -np 2 %s scripts/sweep.lua --data generated --generated-n 400 --methods erm " ..
      "--rhos 1 --seeds 1,2 --epochs 1 --batch 64 --out %s"):format(MPIRUN, q(MPI_BIN), q(out)))
    assert.are.equal(0, r.code, r.out .. r.err)
    local m1 = util.json_decode(util.read_file(out .. "/erm_rho1_seed1/metrics.json"))
    local m2 = util.json_decode(util.read_file(out .. "/erm_rho1_seed2/metrics.json"))
    assert.are.equal(0, m1.rank)
    assert.are.equal(1, m2.rank)
    local s = util.json_decode(util.read_file(out .. "/summary.json"))
    assert.are.equal(1, #s.rows)
    assert.are.equal(2, s.rows[1].n)
    local mean = (m1.hard_acc + m2.hard_acc) / 2
    assert.is_true(math.abs(s.rows[1].hard_acc_mean - mean) < 1e-9)
    assert.truthy(util.exists(out .. "/summary.svg"))
    assert.truthy(r.out:find("erm", 1, true))
  end)
end)
