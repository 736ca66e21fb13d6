/* repl_impl.h — what the REPL's files share (repl.c the loop, rnames.c Lua names, rprint.c
   values shown, rcomplete.c completion and help); not part of the Lua library. */
#ifndef CNNLAB_REPL_IMPL_H
#define CNNLAB_REPL_IMPL_H

#include <stddef.h>

#include <lua.h>

/* rnames.c: Lua's reserved words (NULL-terminated) and the lexer's name rules, ASCII only. */
extern const char *const repl_keywords[];
int repl_is_ident_start(int c);
int repl_is_ident_char(int c);
int repl_is_blank(int c);
int repl_is_keyword(const char *s, size_t len);
/* True when s[0..len) can follow a '.' in Lua source. */
int repl_is_identifier(const char *s, size_t len);

/* rprint.c: cuts the string on top to one entry's width; prints its arguments as the REPL
   shows results (a lua_CFunction, run protected). */
void repl_shorten_top(lua_State *L);
int repl_print_results(lua_State *L);

/* rcomplete.c: the global help(), and readline's completion hooks over L's globals. */
int repl_help(lua_State *L);
void repl_setup_completion(lua_State *L);

#endif
