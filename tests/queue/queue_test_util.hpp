#pragma once

// Reading task_master's output, for the tests that run the programs.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <stdlib.h>
#include <unistd.h>

#include "net_util.hpp"
#include "process.hpp"

namespace troupe::test {

/// Returns the numbers of the `Put task n...` lines in `out`.
inline std::vector<int64_t> puts(const std::string& out) {
  std::vector<int64_t> xs;
  for (auto& line : lines(out)) {
    long long n = 0;
    if (std::sscanf(line.c_str(), "Put task %lld...", &n) == 1)
      xs.push_back(n);
  }
  return xs;
}

/// Returns the numbers of the `Result: n * n = m` lines in `out`; checks
/// (Catch2 `CHECK`, so only from the test thread) that each `m` is `n * n`.
inline std::vector<int64_t> results(const std::string& out) {
  std::vector<int64_t> xs;
  for (auto& line : lines(out)) {
    long long n = 0;
    long long n2 = 0;
    long long m = 0;
    if (std::sscanf(line.c_str(), "Result: %lld * %lld = %lld", &n, &n2, &m)
        == 3) {
      CHECK(n == n2);
      CHECK(m == n * n);
      xs.push_back(n);
    }
  }
  return xs;
}

/// Returns whether `xs` has no element twice.
inline bool distinct(const std::vector<int64_t>& xs) {
  return std::set<int64_t>(xs.begin(), xs.end()).size() == xs.size();
}

inline std::set<int64_t> as_set(const std::vector<int64_t>& xs) {
  return {xs.begin(), xs.end()};
}

} // namespace troupe::test
