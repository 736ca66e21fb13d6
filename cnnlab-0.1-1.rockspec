-- luarocks --lua-version=5.4 make --local cnnlab-0.1-1.rockspec: builds the C core with the
-- Makefile and installs, through `make rock-install`, the whole lua/cnnlab/ tree and the C
-- module into the rocks tree, so that plain lua5.4 can `require "cnnlab"` once
-- `eval "$(luarocks --lua-version=5.4 path)"` has set the paths. Needs the Debian packages of
-- README.md (`make test` installs them). The rock lua-cjson comes from luarocks.org; with
-- Debian's lua-cjson instead, or offline, add --deps-mode=none (docs/install.md).
package = "cnnlab"
version = "0.1-1"
source = {url = "git+file://."}
description = {
  summary = "A small, fast deep-learning lab: C tensors, autograd and layers for Lua 5.4",
  detailed = [[Tensors, reverse-mode autograd, CNN layers, hooks and optimizers in C11,
    scripted from Lua; a study of colour shortcuts on Colored MNIST.]],
}
dependencies = {"lua >= 5.4, < 5.5", "lua-cjson"}
build = {
  type = "make",
  build_target = "all",
  install_target = "rock-install",
  build_variables = {CFLAGS = "$(CFLAGS)"},
  install_variables = {INST_LUADIR = "$(LUADIR)", INST_LIBDIR = "$(LIBDIR)"},
}
