#include "troupe/supervision/supervisor.hpp"

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include "troupe/runtime/config.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/node.hpp"

namespace troupe::supervision {

namespace {

using namespace std::chrono_literals;
using crash_atom = caf::atom_constant<caf::atom("crash")>;
using finish_atom = caf::atom_constant<caf::atom("finish")>;

// Answers an int with itself; throws on crash; exits normally on finish.
caf::behavior worker(caf::event_based_actor* self) {
  install_log_handlers(self);
  return {
    [](int32_t x) { return x; },
    [](crash_atom) -> int32_t { throw std::runtime_error("boom"); },
    [self](finish_atom) { self->quit(); },
  };
}

struct fixture {
  static troupe::config& init(troupe::config& cfg) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    // No node here: the supervisor logs to spdlog's default logger.
    spdlog::set_level(spdlog::level::off);
    return cfg;
  }
  troupe::config cfg;
  caf::actor_system sys{init(cfg)};
  caf::scoped_actor self{sys, true};
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  std::map<std::string, int> starts;

  ~fixture() {
    sched.run();
  }

  // A child that counts its starts in `starts`.
  child_spec spec(const std::string& id,
                  restart_policy p = restart_policy::permanent) {
    return child(
      id,
      [this, id](caf::actor_system& s) {
        ++starts[id];
        return s.spawn(worker);
      },
      p);
  }

  caf::actor start(supervisor_flags flags, std::vector<child_spec> xs) {
    auto sup = sys.spawn(supervisor, flags, std::move(xs));
    sched.run();
    return sup;
  }

  // Returns the supervisor's current child `id`, or null.
  caf::actor get(const caf::actor& sup, const std::string& id) {
    self->send(sup, caf::get_atom_v, id);
    sched.run();
    caf::actor result;
    self->receive([&](caf::actor& x) { result = std::move(x); },
                  [&](caf::error&) {},
                  caf::after(0s) >> [] { FAIL("no reply"); });
    return result;
  }

  // Returns the stable handle of child `id`, or null.
  caf::actor stable(const caf::actor& sup, const std::string& id) {
    self->send(sup, child_atom::value, id);
    sched.run();
    caf::actor result;
    self->receive([&](caf::actor& x) { result = std::move(x); },
                  [&](caf::error&) {},
                  caf::after(0s) >> [] { FAIL("no reply"); });
    return result;
  }

  // Sends `xs...` to `hdl` as a request; the answer is there once the
  // scheduler has run (see `answer`).
  template <class... Ts>
  auto ask(const caf::actor& hdl, Ts... xs) {
    return self->request(hdl, caf::infinite, xs...);
  }

  // Runs the scheduler, then returns the int answer to `req` or its error.
  template <class Req>
  caf::expected<int32_t> answer(Req& req) {
    sched.run();
    caf::expected<int32_t> result{caf::sec::request_timeout};
    req.receive([&](int32_t x) { result = x; },
                [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  void send_and_run(const caf::actor& hdl, caf::message msg) {
    caf::anon_send(hdl, std::move(msg));
    sched.run();
  }

  // Returns the exit reason of the monitored `hdl`, if it exited.
  caf::error down_reason(const caf::actor& hdl) {
    caf::error result = caf::sec::none;
    bool seen = false;
    self->receive(
      [&](caf::down_msg& dm) {
        seen = dm.source == hdl.address();
        result = dm.reason;
      },
      caf::after(0s) >> [] {});
    return seen ? result : caf::make_error(caf::sec::request_timeout);
  }
};

supervisor_flags flags_for(restart_strategy s) {
  supervisor_flags f;
  f.strategy = s;
  return f;
}

} // namespace

TEST_CASE_METHOD(fixture, "one_for_one restarts only the failed child",
                 "[actors][supervisor]") {
  auto sup = start(flags_for(restart_strategy::one_for_one),
                   {spec("a"), spec("b"), spec("c")});
  auto a = get(sup, "a");
  auto b = get(sup, "b");
  auto c = get(sup, "c");
  REQUIRE((a && b && c));
  send_and_run(b, caf::make_message(crash_atom::value));
  CHECK(starts == std::map<std::string, int>{{"a", 1}, {"b", 2}, {"c", 1}});
  CHECK(get(sup, "a") == a);
  auto b2 = get(sup, "b");
  CHECK(b2);
  CHECK(b2 != b);
  CHECK(get(sup, "c") == c);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(fixture, "one_for_all restarts every child",
                 "[actors][supervisor]") {
  auto sup = start(flags_for(restart_strategy::one_for_all),
                   {spec("a"), spec("b"), spec("c")});
  auto a = get(sup, "a");
  auto c = get(sup, "c");
  send_and_run(get(sup, "b"), caf::make_message(crash_atom::value));
  CHECK(starts == std::map<std::string, int>{{"a", 2}, {"b", 2}, {"c", 2}});
  CHECK(get(sup, "a") != a);
  CHECK(get(sup, "c") != c);
  CHECK(get(sup, "a"));
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(fixture,
                 "rest_for_one restarts the failed child and those after it",
                 "[actors][supervisor]") {
  auto sup = start(flags_for(restart_strategy::rest_for_one),
                   {spec("a"), spec("b"), spec("c")});
  auto a = get(sup, "a");
  auto c = get(sup, "c");
  send_and_run(get(sup, "b"), caf::make_message(crash_atom::value));
  CHECK(starts == std::map<std::string, int>{{"a", 1}, {"b", 2}, {"c", 2}});
  CHECK(get(sup, "a") == a);
  CHECK(get(sup, "c") != c);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(fixture, "restart policies decide who comes back",
                 "[actors][supervisor]") {
  auto sup = start(flags_for(restart_strategy::one_for_one),
                   {spec("perm", restart_policy::permanent),
                    spec("trans", restart_policy::transient),
                    spec("temp", restart_policy::temporary)});
  SECTION("a normal exit: only the permanent child comes back") {
    for (auto id : {"perm", "trans", "temp"})
      send_and_run(get(sup, id), caf::make_message(finish_atom::value));
    CHECK(
      starts
      == std::map<std::string, int>{{"perm", 2}, {"trans", 1}, {"temp", 1}});
    CHECK(get(sup, "perm"));
    CHECK_FALSE(get(sup, "trans"));
  }
  SECTION("a crash: the permanent and the transient child come back") {
    for (auto id : {"perm", "trans", "temp"})
      send_and_run(get(sup, id), caf::make_message(crash_atom::value));
    CHECK(
      starts
      == std::map<std::string, int>{{"perm", 2}, {"trans", 2}, {"temp", 1}});
    CHECK_FALSE(get(sup, "temp"));
  }
  self->send(sup, caf::get_atom_v);
  sched.run();
  std::vector<std::string> running;
  self->receive([&](std::vector<std::string>& xs) { running = xs; },
                caf::after(0s) >> [] { FAIL("no reply"); });
  CHECK(running.front() == "perm");
  CHECK(running.size() == 1 + (starts["trans"] == 2 ? 1 : 0));
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(
  fixture, "too many restarts make the supervisor fail along with its children",
  "[actors][supervisor]") {
  supervisor_flags f;
  f.intensity = 2;
  f.period = 10s;
  auto sup = start(f, {spec("a"), spec("b")});
  auto b = get(sup, "b");
  self->monitor(sup);
  self->monitor(b);
  for (int i = 0; i < 2; ++i)
    send_and_run(get(sup, "a"), caf::make_message(crash_atom::value));
  CHECK(starts["a"] == 3);
  auto last = get(sup, "a");
  send_and_run(last, caf::make_message(crash_atom::value));
  CHECK(starts["a"] == 3); // no fourth start
  std::vector<caf::down_msg> downs;
  for (int i = 0; i < 2; ++i)
    self->receive([&](caf::down_msg& dm) { downs.push_back(dm); },
                  caf::after(0s) >> [] {});
  REQUIRE(downs.size() == 2);
  for (auto& dm : downs) {
    INFO(sys.render(dm.reason));
    CHECK(dm.reason == errc::restart_intensity);
  }
}

TEST_CASE_METHOD(fixture, "restarts older than the period do not count",
                 "[actors][supervisor]") {
  supervisor_flags f;
  f.intensity = 1;
  f.period = 1s;
  auto sup = start(f, {spec("a")});
  self->monitor(sup);
  send_and_run(get(sup, "a"), caf::make_message(crash_atom::value));
  sched.advance_time(2s);
  send_and_run(get(sup, "a"), caf::make_message(crash_atom::value));
  CHECK(starts["a"] == 3);
  CHECK(get(sup, "a"));
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(fixture, "restarts wait for a backoff that doubles",
                 "[actors][supervisor]") {
  supervisor_flags f;
  f.backoff = 100ms;
  f.max_backoff = 150ms;
  auto sup = start(f, {spec("a")});
  send_and_run(get(sup, "a"), caf::make_message(crash_atom::value));
  CHECK(starts["a"] == 1);
  CHECK_FALSE(get(sup, "a")); // not running until the backoff passed
  sched.advance_time(100ms);
  sched.run();
  CHECK(starts["a"] == 2);
  send_and_run(get(sup, "a"), caf::make_message(crash_atom::value));
  sched.advance_time(100ms);
  sched.run();
  CHECK(starts["a"] == 2); // second restart: 150ms (200ms capped)
  sched.advance_time(50ms);
  sched.run();
  CHECK(starts["a"] == 3);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(fixture, "a supervisor restarts a failed child supervisor",
                 "[actors][supervisor]") {
  supervisor_flags strict;
  strict.intensity = 0; // gives up on the first failure
  auto inner_spec = child("inner", [this, strict](caf::actor_system& s) {
    ++starts["inner"];
    return s.spawn(supervisor, strict, std::vector<child_spec>{spec("x")});
  });
  auto outer = start(supervisor_flags{}, {inner_spec});
  auto inner = get(outer, "inner");
  REQUIRE(inner);
  send_and_run(get(inner, "x"), caf::make_message(crash_atom::value));
  CHECK(starts == std::map<std::string, int>{{"inner", 2}, {"x", 2}});
  auto inner2 = get(outer, "inner");
  CHECK(inner2);
  CHECK(inner2 != inner);
  CHECK(get(inner2, "x"));
  caf::anon_send_exit(outer, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(fixture, "unknown children are reported by name",
                 "[actors][supervisor]") {
  auto sup = start(supervisor_flags{}, {spec("a")});
  self->send(sup, caf::get_atom_v, std::string{"nope"});
  sched.run();
  caf::error err;
  self->receive([&](caf::error& x) { err = std::move(x); },
                caf::after(0s) >> [] { FAIL("no reply"); });
  CHECK(err == errc::no_such_child);
  CHECK(sys.render(err) == "troupe_error(no_such_child, nope)");
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(fixture,
                 "a stable child handle reaches the child across restarts",
                 "[actors][supervisor]") {
  supervisor_flags f;
  f.backoff = 100ms;
  auto sup = start(f, {spec("a"), spec("b")});
  auto h = stable(sup, "a");
  REQUIRE(h);
  CHECK(stable(sup, "a") == h); // one per child
  CHECK(stable(sup, "b") != h);
  auto first = get(sup, "a");
  CHECK(h != first);
  auto r1 = ask(h, int32_t{5});
  CHECK(answer(r1) == 5);
  SECTION("the request the child threw on gets the exception's message") {
    auto r2 = ask(h, crash_atom::value);
    auto err = answer(r2);
    REQUIRE_FALSE(err);
    CHECK(err.error() == caf::sec::runtime_error);
    CHECK(error_text(err.error()) == "boom");
  }
  SECTION("one sent while the child restarts goes to the next incarnation") {
    send_and_run(first, caf::make_message(crash_atom::value));
    REQUIRE_FALSE(get(sup, "a")); // waiting for the backoff
    auto r3 = ask(h, int32_t{7});
    sched.run();
    CHECK(starts["a"] == 1);
    sched.advance_time(100ms);
    CHECK(answer(r3) == 7);
    CHECK(starts["a"] == 2);
    CHECK(get(sup, "a") != first);
    CHECK(stable(sup, "a") == h);
  }
  auto r4 = ask(h, int32_t{8});
  sched.advance_time(100ms);
  CHECK(answer(r4) == 8);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(fixture,
                 "messages the failed incarnation never took go to the next",
                 "[actors][supervisor]") {
  auto sup = start(supervisor_flags{}, {spec("a")});
  auto h = stable(sup, "a");
  // The crash and two requests reach the child's mailbox together: it takes
  // the crash, and the requests wait for its successor.
  auto r1 = ask(h, crash_atom::value);
  auto r2 = ask(h, int32_t{1});
  auto r3 = ask(h, int32_t{2});
  auto e1 = answer(r1);
  CHECK(e1.error() == caf::sec::runtime_error);
  CHECK(answer(r2) == 1);
  CHECK(answer(r3) == 2);
  CHECK(starts["a"] == 2);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(fixture,
                 "a stable handle fails requests, saying why, while its child "
                 "will not come back",
                 "[actors][supervisor]") {
  auto sup = start(supervisor_flags{},
                   {spec("t", restart_policy::transient), spec("p")});
  auto h = stable(sup, "t");
  send_and_run(get(sup, "t"), caf::make_message(finish_atom::value));
  REQUIRE_FALSE(get(sup, "t"));
  auto r1 = ask(h, int32_t{1});
  auto e1 = answer(r1);
  REQUIRE_FALSE(e1);
  CHECK(e1.error() == errc::no_such_child);
  CHECK(error_text(e1.error())
        == "child 't' is not running and will not be restarted (its restart "
           "policy)");
  auto hp = stable(sup, "p");
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  sched.run();
  auto r2 = ask(hp, int32_t{2});
  auto e2 = answer(r2);
  REQUIRE_FALSE(e2);
  CHECK(e2.error() == errc::no_such_child);
  CHECK(error_text(e2.error()).find("its supervisor stopped")
        != std::string::npos);
}

// -- on the real scheduler ----------------------------------------------------

namespace {

using get_all_atom = caf::atom_constant<caf::atom("getall")>;

// Keeps every value it is sent; answers getall with them.
caf::behavior sink(caf::stateful_actor<std::set<int32_t>>* self) {
  return {
    [self](int32_t x) { self->state.insert(x); },
    [self](get_all_atom) {
      return std::vector<int32_t>(self->state.begin(), self->state.end());
    },
  };
}

// Processes (x, attempt): throws on a first attempt at a multiple of 97;
// otherwise hands x to the sink, then acknowledges it.
caf::behavior flaky(caf::event_based_actor* self, caf::actor snk) {
  install_log_handlers(self);
  return {
    [=](int32_t x, int32_t attempt) -> int32_t {
      if (x % 97 == 0 && attempt == 0)
        throw std::runtime_error("flaky on " + std::to_string(x));
      self->send(snk, x);
      return x;
    },
  };
}

struct load_state {
  std::map<int32_t, int32_t> pending; // value -> attempt
  std::vector<int32_t> acked;
  size_t outstanding = 0;
  size_t errors = 0;
  int rounds = 0;
};

using go_atom = caf::atom_constant<caf::atom("go")>;

// Sends every pending value to the supervisor's current worker at once;
// re-sends what failed in the next round. Replies to the first `go` with
// (acked values, errors seen) once everything is acknowledged.
caf::behavior load_client(caf::stateful_actor<load_state>* self, caf::actor sup,
                          int32_t n) {
  for (int32_t x = 1; x <= n; ++x)
    self->state.pending.emplace(x, 0);
  auto rp = std::make_shared<
    caf::typed_response_promise<std::vector<int32_t>, size_t>>();
  return {
    [=](go_atom) {
      if (self->state.rounds == 0)
        *rp = self->make_response_promise<std::vector<int32_t>, size_t>();
      auto& st = self->state;
      if (st.pending.empty()) {
        rp->deliver(st.acked, st.errors);
        self->quit();
        return;
      }
      if (++st.rounds > 500) {
        self->quit(caf::make_error(caf::sec::runtime_error, "too many rounds"));
        return;
      }
      self->request(sup, 5s, caf::get_atom_v, std::string{"worker"})
        .then(
          [=](caf::actor w) {
            auto& ls = self->state;
            ls.outstanding = ls.pending.size();
            for (auto [x, attempt] : ls.pending)
              self->request(w, 5s, x, attempt)
                .then(
                  [=](int32_t y) {
                    self->state.pending.erase(y);
                    self->state.acked.push_back(y);
                    if (--self->state.outstanding == 0)
                      self->send(self, go_atom::value);
                  },
                  [=, x = x](caf::error&) {
                    ++self->state.errors;
                    ++self->state.pending[x];
                    if (--self->state.outstanding == 0)
                      self->send(self, go_atom::value);
                  });
          },
          [=](caf::error&) { // between a failure and the restart
            self->delayed_send(self, 1ms, go_atom::value);
          });
    },
  };
}

} // namespace

TEST_CASE("a throwing child under load loses no acknowledged message",
          "[actors][supervisor]") {
  troupe::config cfg;
  cfg.log_level = "off";
  node n{cfg};
  auto snk = n.spawn(sink);
  supervisor_flags f;
  f.intensity = 1000;
  f.period = 1s;
  auto sup = n.spawn(supervisor, f,
                     std::vector<child_spec>{child("worker", [snk](auto& sys) {
                       return sys.spawn(flaky, snk);
                     })});
  constexpr int32_t total = 5000;
  auto client = n.system().spawn(load_client, sup, total);
  caf::scoped_actor self{n.system()};
  std::vector<int32_t> acked;
  size_t errors = 0;
  self->request(client, 60s, go_atom::value)
    .receive(
      [&](std::vector<int32_t>& xs, size_t errs) {
        acked = std::move(xs);
        errors = errs;
      },
      [&](caf::error& err) { FAIL(n.system().render(err)); });
  std::vector<int32_t> kept;
  self->request(snk, 10s, get_all_atom::value)
    .receive([&](std::vector<int32_t>& xs) { kept = std::move(xs); },
             [&](caf::error& err) { FAIL(n.system().render(err)); });
  CHECK(acked.size() == static_cast<size_t>(total));
  CHECK(errors >= static_cast<size_t>(total / 97)); // the worker did crash
  std::set<int32_t> kept_set(kept.begin(), kept.end());
  size_t lost = 0;
  for (auto x : acked)
    lost += kept_set.count(x) == 0 ? 1 : 0;
  CHECK(lost == 0);
  n.stop();
}

TEST_CASE("a child spawned with actor_child answers the request it threw on "
          "with the exception's message",
          "[actors][supervisor]") {
  troupe::config cfg;
  cfg.log_level = "off";
  node n{cfg};
  using crash_atom = caf::atom_constant<caf::atom("crash")>;
  auto thrower = []() -> caf::behavior {
    return {[](crash_atom) -> int32_t { throw std::logic_error("bad state"); },
            [](int32_t x) { return x; }};
  };
  auto sup = n.spawn(supervisor, supervisor_flags{},
                     std::vector<child_spec>{actor_child("t", thrower)});
  auto h = child_handle(n.system(), sup, "t");
  REQUIRE(h);
  auto missing = child_handle(n.system(), sup, "nope");
  CHECK(missing.error() == errc::no_such_child);
  caf::scoped_actor self{n.system()};
  self->request(*h, 10s, crash_atom::value)
    .receive([](int32_t) { FAIL("no error"); },
             [&](caf::error& err) {
               CHECK(err == caf::sec::runtime_error);
               CHECK(error_text(err) == "bad state");
             });
  self->request(*h, 10s, int32_t{3})
    .receive([](int32_t x) { CHECK(x == 3); },
             [&](caf::error& err) { FAIL(n.system().render(err)); });
  n.stop();
}

TEST_CASE("stopping the node stops the supervisor and its children",
          "[actors][supervisor]") {
  troupe::config cfg;
  cfg.log_level = "off";
  node n{cfg};
  auto sup
    = n.spawn(supervisor, supervisor_flags{},
              std::vector<child_spec>{
                child("a", [](auto& sys) { return sys.spawn(worker); }),
                child("b", [](auto& sys) { return sys.spawn(worker); })});
  caf::scoped_actor self{n.system()};
  std::vector<caf::actor> kids;
  for (auto id : {"a", "b"})
    self->request(sup, 10s, caf::get_atom_v, std::string{id})
      .receive([&](caf::actor& x) { kids.push_back(x); },
               [&](caf::error& err) { FAIL(n.system().render(err)); });
  REQUIRE(kids.size() == 2);
  for (auto& k : kids)
    self->monitor(k);
  n.stop();
  size_t downs = 0;
  for (int i = 0; i < 2; ++i)
    self->receive(
      [&](caf::down_msg& dm) {
        if (dm.reason == caf::exit_reason::user_shutdown)
          ++downs;
      },
      caf::after(10s) >> [] {});
  CHECK(downs == 2);
}

} // namespace troupe::supervision
