#pragma once
// `cosocket -V`: the version of cosocket and of each library it runs on.
#include <cstdio>

namespace cosocket {

void print_versions(FILE* out);

}  // namespace cosocket
