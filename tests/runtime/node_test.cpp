#include "troupe/runtime/node.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/message_types.hpp"
#include "troupe/runtime/spawn.hpp"

namespace troupe {

namespace {

using namespace std::chrono_literals;

// An actor that waits for anything and exits only when told to.
caf::behavior idle(caf::event_based_actor*) {
  return {[](int32_t) {}};
}

// Waits (bounded) for the down message of the actor `hdl` that `self`
// monitors; returns its exit reason, or `sec::request_timeout`.
caf::error await_down(caf::scoped_actor& self, const caf::actor& hdl) {
  caf::error reason = caf::sec::request_timeout;
  self->receive(
    [&](caf::down_msg& dm) {
      if (dm.source == hdl.address())
        reason = dm.reason;
    },
    caf::after(10s) >> [] {});
  return reason;
}

} // namespace

TEST_CASE("stop() tells top-level actors to exit with user_shutdown",
          "[runtime][node]") {
  config cfg;
  cfg.name = "n1";
  node n{cfg};
  auto a = n.spawn(idle);
  caf::scoped_actor self{n.system()};
  self->monitor(a);
  CHECK_FALSE(n.stopping());
  CHECK_FALSE(n.wait_for_stop(1ms));
  n.stop();
  CHECK(n.stopping());
  CHECK(n.wait_for_stop(1ms));
  CHECK(await_down(self, a) == caf::exit_reason::user_shutdown);
  CHECK_FALSE(n.stopped_by_signal());
}

TEST_CASE("an actor spawned after stop() is told to exit at once",
          "[runtime][node]") {
  config cfg;
  node n{cfg};
  n.stop();
  caf::scoped_actor self{n.system()};
  auto a = n.spawn(idle);
  self->monitor(a);
  CHECK(await_down(self, a) == caf::exit_reason::user_shutdown);
}

TEST_CASE("stop() reaches every live top-level actor after many have gone",
          "[runtime][node]") {
  // Spawns enough short-lived actors to make the node prune its list.
  config cfg;
  node n{cfg};
  caf::scoped_actor self{n.system()};
  for (int i = 0; i < 3000; ++i) {
    auto tmp = n.spawn(idle);
    self->monitor(tmp);
    caf::anon_send_exit(tmp, caf::exit_reason::user_shutdown);
    CHECK(await_down(self, tmp) == caf::exit_reason::user_shutdown);
  }
  auto keeper = n.spawn(idle);
  self->monitor(keeper);
  n.stop();
  CHECK(await_down(self, keeper) == caf::exit_reason::user_shutdown);
}

TEST_CASE("wait_for_stop() wakes when another thread stops the node",
          "[runtime][node]") {
  config cfg;
  node n{cfg};
  std::thread stopper{[&] { n.stop(); }};
  CHECK(n.wait_for_stop(10s));
  stopper.join();
}

TEST_CASE("the node's logger carries its name and writes to the log file",
          "[runtime][node]") {
  auto path = std::string{"troupe_node_test.log"};
  std::remove(path.c_str());
  {
    config cfg;
    cfg.name = "logged-node";
    cfg.log_file = path;
    cfg.log_level = "debug";
    node n{cfg};
    CHECK(n.log().name() == "logged-node");
    CHECK(&troupe::log(n.system()) == &n.log());
    troupe::log(n.system()).info("hello from the test");
  }
  std::ifstream in{path};
  std::stringstream buf;
  buf << in.rdbuf();
  auto text = buf.str();
  CHECK(text.find("[logged-node] [info] hello from the test")
        != std::string::npos);
  CHECK(text.find("node started; message registry ") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("a node whose config was never parsed is named after the program",
          "[runtime][node]") {
  config cfg; // no parse(): an embedded node
  node n{cfg};
  CHECK(n.log().name() == "troupe_runtime_tests");
  CHECK(cfg.name == "troupe_runtime_tests");
}

TEST_CASE("an actor spawned by the node that throws answers the request "
          "with the exception's message - the node's log says so",
          "[runtime][node]") {
  auto path = std::string{"troupe_node_test_throw.log"};
  std::remove(path.c_str());
  {
    config cfg;
    cfg.name = "throwing-node";
    cfg.log_file = path;
    node n{cfg};
    auto thrower = n.spawn([]() -> caf::behavior {
      return {[](int32_t x) -> int32_t {
        throw std::runtime_error("no " + std::to_string(x));
      }};
    });
    // troupe::spawn too, with a stateful actor and an argument.
    auto stateful = troupe::spawn(
      n.system(),
      [](caf::stateful_actor<int32_t>* self, int32_t start) -> caf::behavior {
        self->state = start;
        return {[self](int32_t) -> int32_t {
          throw std::logic_error("state " + std::to_string(self->state));
        }};
      },
      int32_t{41});
    caf::scoped_actor self{n.system()};
    for (auto& [hdl, text] :
         {std::pair{thrower, "no 7"}, std::pair{stateful, "state 41"}}) {
      self->request(hdl, 10s, int32_t{7})
        .receive([](int32_t) { FAIL("no error"); },
                 [&, text = text](caf::error& err) {
                   CHECK(err == caf::sec::runtime_error);
                   CHECK(error_text(err) == text);
                 });
    }
    // An actor's own handler wins over troupe's.
    auto own = n.spawn([](caf::event_based_actor* me) -> caf::behavior {
      me->set_exception_handler([](std::exception_ptr&) -> caf::error {
        return caf::make_error(caf::sec::runtime_error, "own handler");
      });
      return {[](int32_t) -> int32_t { throw std::runtime_error("x"); }};
    });
    self->request(own, 10s, int32_t{1})
      .receive(
        [](int32_t) { FAIL("no error"); },
        [&](caf::error& err) { CHECK(error_text(err) == "own handler"); });
  }
  std::ifstream in{path};
  std::stringstream buf;
  buf << in.rdbuf();
  auto text = buf.str();
  CHECK(text.find("[throwing-node] [error] actor #") != std::string::npos);
  CHECK(text.find("failed: no 7") != std::string::npos);
  CHECK(text.find("failed: state 41") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("the node's fingerprint is its config's registry fingerprint",
          "[runtime][node]") {
  config cfg;
  node n{cfg};
  CHECK(n.fingerprint() == registry_fingerprint(cfg));
}

} // namespace troupe
