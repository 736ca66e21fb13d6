-- luarocks make cnnlab-0.1-1.rockspec: builds the C core and installs the cnnlab Lua
-- modules, so that plain lua5.4 can `require "cnnlab"`. Needs the Debian packages listed in
-- README.md (libpng, zlib, libcjson, OpenBLAS, readline headers).
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
