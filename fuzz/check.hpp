#pragma once

// The check that fails a fuzz run.

#include <cstdio>
#include <cstdlib>

/// Aborts with the failed condition if `cond` is false, so that libFuzzer
/// saves the input as a crash. Unlike `assert`, never compiled out.
#define TROUPE_FUZZ_CHECK(cond)                                                \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,    \
                   #cond);                                                     \
      std::abort();                                                            \
    }                                                                          \
  } while (false)
