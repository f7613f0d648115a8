#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "process.hpp"

namespace troupe::test {

namespace {

// Generous: CI also runs the examples under AddressSanitizer.
constexpr auto timeout = std::chrono::seconds(30);

const std::vector<std::string> expected{
  "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]",
  "4",
  "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]",
};

} // namespace

TEST_CASE("the pool_map example prints the squares - 4 - then the squares",
          "[examples][pool_map]") {
  auto r = run_process({bin("pool_map")}, timeout);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  CHECK(lines(r.out) == expected);
  CHECK(r.err.empty());
}

TEST_CASE("the pool_map example prints the same with one or many workers",
          "[examples][pool_map]") {
  for (auto workers : {"1", "3", "16"}) {
    CAPTURE(workers);
    auto r = run_process({bin("pool_map"), "--workers", workers}, timeout);
    REQUIRE_FALSE(r.timed_out);
    CHECK(r.exit_code == 0);
    CHECK(lines(r.out) == expected);
  }
}

TEST_CASE("the pool_map example rejects a negative pool size",
          "[examples][pool_map]") {
  auto r = run_process({bin("pool_map"), "--workers", "-1"}, timeout);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--workers") != std::string::npos);
}

} // namespace troupe::test
