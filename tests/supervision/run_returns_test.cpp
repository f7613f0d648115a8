// troupe::run returns once main's function has returned and no actor has
// work left: a supervisor, pool, task queue or bus the program dropped does
// not keep the process alive; an actor still working does. And an exception in
// a supervised child or a pool job reaches the requester with its message,
// logged by troupe, with nothing printed by CAF. Each case runs
// troupe_run_probe (run_probe.cpp) as a process.

#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "process.hpp"

namespace troupe::supervision {

namespace {

using namespace std::chrono_literals;

test::process_result probe(const std::string& make,
                           std::vector<std::string> more = {}) {
  std::vector<std::string> args{test::bin("troupe_run_probe"), "--make", make};
  args.insert(args.end(), more.begin(), more.end());
  // Bounded: a process that waits for ever is killed, and the test fails.
  return test::run_process(args, 20s);
}

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

} // namespace

TEST_CASE("a program that drops its supervisor, pool, queue or bus exits when "
          "its function returns",
          "[actors][supervisor][run]") {
  auto make = GENERATE(as<std::string>{}, "supervisor", "ticker", "pool",
                       "queue", "served-queue", "local-worker", "bus");
  INFO("--make " << make);
  auto res = probe(make);
  INFO("stdout: " << res.out << "\nstderr: " << res.err);
  CHECK_FALSE(res.timed_out);
  CHECK(res.exit_code == 0);
  CHECK(contains(res.out, "ready\n"));
  CHECK(res.elapsed < 10s);
}

TEST_CASE("a program whose function returns waits for an actor still at work",
          "[actors][supervisor][run]") {
  auto res = probe("worker", {"--work", "300ms"});
  INFO("stdout: " << res.out << "\nstderr: " << res.err);
  CHECK_FALSE(res.timed_out);
  CHECK(res.exit_code == 0);
  CHECK(res.out == "ready\nworker done\n");
  CHECK(res.elapsed >= 300ms);
}

TEST_CASE("an exception in a supervised child or a pool job reaches the "
          "requester with its message - troupe logs it - CAF prints nothing",
          "[actors][supervisor][run]") {
  auto res = probe("crash");
  INFO("stdout: " << res.out << "\nstderr: " << res.err);
  CHECK(res.exit_code == 0);
  CHECK(res.out
        == "before: 1\n"
           "crash: boom: the counter broke\n"
           // the stable handle reached the restarted child, which counts
           // from 0 again
           "after restart: 2\n"
           "pool: bad job\n"
           "ready\n");
  CHECK(contains(res.err, "[error] actor #"));
  CHECK(contains(res.err, "failed: boom: the counter broke"));
  // CAF's own reports (on stdout or stderr): none.
  for (auto* text : {&res.out, &res.err}) {
    CHECK_FALSE(contains(*text, "*** unhandled exception"));
    CHECK_FALSE(contains(*text, "*** unexpected message"));
  }
}

} // namespace troupe::supervision
