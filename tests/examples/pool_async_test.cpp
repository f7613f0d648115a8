#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "process.hpp"

namespace troupe::test {

namespace {

// Generous: CI also runs the examples under AddressSanitizer.
constexpr auto timeout = std::chrono::seconds(30);

} // namespace

TEST_CASE("the pool_async example prints each result and the callback counts",
          "[examples][pool_async]") {
  auto r = run_process({bin("pool_async")}, timeout);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  std::vector<std::string> expected{
    "job 0: page 0",
    "job 1: page 1",
    "job 2 failed: troupe_error(job_failed, page 2 is missing)",
    "job 3: page 3",
    "job 4: page 4",
    "job 5: page 5",
    "callbacks: 5 ok, 1 failed",
  };
  CHECK(lines(r.out) == expected);
}

TEST_CASE("the pool_async example gives the same results with more workers",
          "[examples][pool_async]") {
  auto r = run_process({bin("pool_async"), "--jobs", "8", "--workers", "8"},
                       timeout);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  auto out = lines(r.out);
  REQUIRE(out.size() == 9);
  CHECK(out[2] == "job 2 failed: troupe_error(job_failed, page 2 is missing)");
  CHECK(out[7] == "job 7: page 7");
  CHECK(out.back() == "callbacks: 7 ok, 1 failed");
}

TEST_CASE("the pool_async example rejects an empty pool",
          "[examples][pool_async]") {
  auto r = run_process({bin("pool_async"), "--workers", "0"}, timeout);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--workers") != std::string::npos);
}

} // namespace troupe::test
