// regex.h -- ngx.re.{match,find,gmatch,sub,gsub,opt} on PCRE2, with OpenResty's
// option letters, capture tables and error strings (see regex.cc).
#ifndef COSOCKET_NGX_RE_H_
#define COSOCKET_NGX_RE_H_

struct lua_State;

namespace cosocket {

// Creates ngx.re in the table at absolute stack index `ngx`. Each call makes its own
// cache of regexes compiled with the "o" option (least recently used first out, 1024
// entries), owned by the Lua state.
void open_ngx_re(lua_State* L, int ngx);

}  // namespace cosocket

#endif  // COSOCKET_NGX_RE_H_
