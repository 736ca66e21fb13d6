/* rnames.c — Lua names as the lexer reads them, for printing keys and completing members. */
#include "app/repl_impl.h"

#include <string.h>

const char *const repl_keywords[] = {"and",   "break", "do",       "else",  "elseif", "end",
                                     "false", "for",   "function", "goto",  "if",     "in",
                                     "local", "nil",   "not",      "or",    "repeat", "return",
                                     "then",  "true",  "until",    "while", NULL};

/* ASCII tests rather than <ctype.h>: readline switches LC_CTYPE to the user's locale, while
   Lua's own lexer accepts only ASCII letters in names. */
int repl_is_ident_start(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
int repl_is_ident_char(int c) { return repl_is_ident_start(c) || (c >= '0' && c <= '9'); }
int repl_is_blank(int c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int repl_is_keyword(const char *s, size_t len) {
  for (const char *const *k = repl_keywords; *k != NULL; k++)
    if (strlen(*k) == len && memcmp(*k, s, len) == 0)
      return 1;
  return 0;
}

/* True when s[0..len) can follow a '.' in Lua source. */
int repl_is_identifier(const char *s, size_t len) {
  if (len == 0 || !repl_is_ident_start((unsigned char)s[0]))
    return 0;
  for (size_t i = 1; i < len; i++)
    if (!repl_is_ident_char((unsigned char)s[i]))
      return 0;
  return !repl_is_keyword(s, len);
}
