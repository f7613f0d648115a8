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

/// A task store's path (`path`) in a fresh directory under /tmp; removes the
/// store's files (with its WAL, shared memory and lock) and the directory.
struct temp_store {
  temp_store() {
    char tmpl[] = "/tmp/troupe-master-store-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    path = dir + "/queue.db";
  }

  ~temp_store() {
    for (auto suffix : {"", "-wal", "-shm", ".lock"})
      std::remove((path + suffix).c_str());
    ::rmdir(dir.c_str());
  }

  temp_store(const temp_store&) = delete;
  temp_store& operator=(const temp_store&) = delete;

  std::string dir;
  std::string path;
};

/// Returns `out` without an unfinished last line: what a process killed in
/// the middle of writing a line left (`Put task 12` of `Put task 123...`).
inline std::string whole_lines(const std::string& out) {
  return out.substr(0, out.rfind('\n') + 1);
}

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
