#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "process.hpp"

namespace troupe::test {

TEST_CASE("the actor_state example greets Alice - then Bob - each in its actor",
          "[examples][actor_state]") {
  auto r = run_process({bin("actor_state")}, std::chrono::seconds(30));
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  std::vector<std::string> expected{
    "Hello, Alice (in actor-A)",
    "Hello, Bob (in actor-B)",
  };
  CHECK(lines(r.out) == expected);
}

} // namespace troupe::test
