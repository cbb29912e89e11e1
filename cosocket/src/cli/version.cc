// version.cc -- `cosocket -V` (see version.h): the libraries' own version calls where they
// have one (what runs, not what was compiled against), their headers' otherwise.
#include "cli/version.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <event2/event.h>
#include <openssl/crypto.h>
#include <pcre2.h>

#include <lua.hpp>

namespace cosocket {

void print_versions(FILE* out) {
  fprintf(out, "cosocket %s\n", COSOCKET_VERSION);
  fprintf(out, "LuaJIT: %s (OpenResty's branch)\n", LUAJIT_VERSION);
  fprintf(out, "libevent: %s\n", event_get_version());
  fprintf(out, "OpenSSL: %s\n", OpenSSL_version(OPENSSL_VERSION));
  char pcre[64] = "?";
  pcre2_config(PCRE2_CONFIG_VERSION, pcre);
  fprintf(out, "PCRE2: %s\n", pcre);
  const char* method = "?";
  event_base* base = event_base_new();
  if (base) method = event_base_get_method(base);
  fprintf(out, "I/O backend: %s\n", method);  // a static string of libevent's: outlives the base
  if (base) event_base_free(base);
}

}  // namespace cosocket
