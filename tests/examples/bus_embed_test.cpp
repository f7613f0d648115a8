#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "process.hpp"

namespace troupe::test {

TEST_CASE("the bus_embed example prints what its subscribers collected",
          "[examples][bus_embed]") {
  auto r = run_process({bin("bus_embed")}, std::chrono::seconds(30));
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  std::vector<std::string> expected{
    "audit saw 6 orders",
    "billing split them: 6 orders, each to one member",
    "quote for ACME: 42.50",
    "slow subscriber: 5 delivered, 5 dropped",
    "no responders: no subscriber for a request on 'nobody.home'",
  };
  CHECK(lines(r.out) == expected);
}

} // namespace troupe::test
