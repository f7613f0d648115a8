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

/// A temporary directory with a cluster key made by `troupe keygen`
/// (`key()`), and more keys on request (`make_key`); the destructor removes
/// them and the directory.
class key_dir {
public:
  key_dir(const key_dir&) = delete;
  key_dir& operator=(const key_dir&) = delete;

  key_dir() {
    char tmpl[] = "/tmp/troupe-key-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    key_ = make_key("cluster.key");
  }

  ~key_dir() {
    for (auto& f : files_)
      std::remove(f.c_str());
    ::rmdir(dir_.c_str());
  }

  /// Makes another key, `name` in the directory, and returns its path.
  std::string make_key(const std::string& name) {
    auto path = dir_ + "/" + name;
    files_.push_back(path);
    auto r
      = run_process({bin("troupe"), "keygen", path}, std::chrono::seconds(60));
    REQUIRE(r.exit_code == 0);
    return path;
  }

  const std::string& key() const {
    return key_;
  }

  const std::string& dir() const {
    return dir_;
  }

private:
  std::string dir_;
  std::string key_;
  std::vector<std::string> files_;
};

} // namespace troupe::test
