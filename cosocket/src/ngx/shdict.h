// shdict.h -- ngx.shared: the dicts declared with `cosocket --shdict 'NAME SIZE'`, each a
// Store (shdict_store.h) in shared memory made by the command before -w N forks.
#ifndef COSOCKET_NGX_SHDICT_H_
#define COSOCKET_NGX_SHDICT_H_

#include <cstddef>
#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace cosocket {

// Parses resty-cli's --shdict argument, "NAME SIZE" (SIZE as nginx: bytes, or with k/K,
// m/M, g/G; more than 8191 bytes). false with *err on a bad spec.
bool parse_shdict_spec(const std::string& spec, ShdictSpec* out, std::string* err);

// Makes the shared memory of every dict of `specs` (once per process; the -w workers inherit
// it). false with *err on failure (a duplicate name, mmap).
bool create_shared_dicts(const std::vector<ShdictSpec>& specs, std::string* err);

// Whether `zone` is one of this process's dicts (its Store): the FFI's zone handles.
bool is_shared_dict_zone(const void* zone);

}  // namespace cosocket

#endif  // COSOCKET_NGX_SHDICT_H_
