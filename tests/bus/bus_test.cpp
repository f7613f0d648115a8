#include "troupe/bus/bus.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include "troupe/runtime/config.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/node.hpp"

#include "bus_test_util.hpp"
#include "gate.hpp"

namespace troupe::bus {

namespace {

using test::eventually;
using test::recorder;

using namespace std::chrono_literals;

// Real scheduler; every wait below is bounded by `patience`.
constexpr auto patience = std::chrono::seconds(20);

struct fixture {
  static troupe::config& init(troupe::config& cfg) {
    // Callbacks that throw log warnings; keep the test output clean.
    spdlog::set_level(spdlog::level::off);
    cfg.log_level = "off";
    return cfg;
  }
  troupe::config cfg;
  troupe::node node{init(cfg)};
  bus b{node};
};

using troupe::test::gate;

struct price {
  std::string symbol;
  double value = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, price& x) {
  return f(caf::meta::type_name("test.price"), x.symbol, x.value);
}

template <class T>
T value_of(caf::expected<T> x) {
  REQUIRE(x);
  return std::move(*x);
}

} // namespace

// -- publish and subscribe ----------------------------------------------------

TEST_CASE_METHOD(fixture,
                 "a subscriber gets what is published on subjects "
                 "its pattern matches",
                 "[bus]") {
  recorder all;
  recorder eu;
  auto s1 = value_of(b.subscribe("orders.>", all.callback()));
  auto s2 = value_of(b.subscribe("orders.eu.*", eu.callback()));
  CHECK(s1.active());
  CHECK(s1.pattern() == "orders.>");
  CHECK(!b.publish("orders.eu.created", "order 1"));
  CHECK(!b.publish("orders.us.created", "order 2"));
  CHECK(!b.publish("orders", "not matched by orders.>"));
  CHECK(!b.publish("users.eu.created", "nobody"));
  REQUIRE(all.wait_for(2));
  REQUIRE(eu.wait_for(1));
  auto msgs = all.messages();
  CHECK(msgs[0].subject == "orders.eu.created");
  CHECK(msgs[0].payload == "order 1");
  CHECK(msgs[0].reply_to.empty());
  CHECK(msgs[0].type == 0);
  CHECK(msgs[1].subject == "orders.us.created");
  CHECK(eu.payloads() == std::vector<std::string>{"order 1"});
  // Nothing else arrives: a marker published last comes next.
  CHECK(!b.publish("orders.end", "end"));
  REQUIRE(all.wait_for(3));
  CHECK(all.payloads()
        == std::vector<std::string>{"order 1", "order 2", "end"});
  CHECK(eu.size() == 1);
  // Counted once the callback returned.
  CHECK(eventually([&] { return s1.stats().delivered == 3; }));
  CHECK(s1.stats().dropped == 0);
}

TEST_CASE_METHOD(fixture,
                 "typed payloads round-trip and a wrong type is a "
                 "type_mismatch",
                 "[bus]") {
  recorder r;
  auto s = value_of(b.subscribe("prices.*", r.callback()));
  CHECK(!b.publish("prices.acme", price{"ACME", 9.5}));
  CHECK(!b.publish("prices.raw", "9.5"));
  REQUIRE(r.wait_for(2));
  auto msgs = r.messages();
  CHECK(msgs[0].is<price>());
  auto p = msgs[0].get<price>();
  REQUIRE(p);
  CHECK(p->symbol == "ACME");
  CHECK(p->value == 9.5);
  CHECK(msgs[0].get<int32_t>().error() == troupe::errc::type_mismatch);
  CHECK(msgs[1].get<price>().error() == troupe::errc::type_mismatch);
  CHECK(msgs[1].payload == "9.5");
}

TEST_CASE_METHOD(fixture,
                 "invalid subjects and patterns are refused by "
                 "publish and subscribe and request",
                 "[bus]") {
  CHECK(b.publish("orders..eu", "x") == errc::invalid_subject);
  CHECK(b.publish("orders.*", "x") == errc::invalid_subject);
  CHECK(b.publish("", "x") == errc::invalid_subject);
  CHECK(b.publish(bus_message_view{"a", "bad reply", "x", 0})
        == errc::invalid_subject);
  CHECK(b.subscribe("orders.>.eu", [](const bus_message&) {}).error()
        == errc::invalid_subject);
  CHECK(b.subscribe("a b", [](const bus_message&) {}).error()
        == errc::invalid_subject);
  subscription_options bad_group;
  bad_group.queue_group = "a group";
  CHECK(b.subscribe("a", bad_group, [](const bus_message&) {}).error()
        == errc::invalid_subject);
  subscription_options no_room;
  no_room.capacity = 0;
  CHECK(b.subscribe("a", no_room, [](const bus_message&) {}).error()
        == caf::sec::invalid_argument);
  CHECK(b.request("a.*", "x", 1s).error() == errc::invalid_subject);
  auto err = b.publish("orders..eu", "x");
  CHECK(error_text(err)
        == "invalid subject 'orders..eu': token 2 is empty "
           "(no leading, trailing or double dots)");
}

TEST_CASE_METHOD(fixture,
                 "messages from one publisher arrive in the order "
                 "they were published",
                 "[bus]") {
  constexpr int n = 20000;
  std::vector<int> seen;
  seen.reserve(n);
  std::mutex mtx;
  std::condition_variable cv;
  auto s = value_of(b.subscribe("seq", [&](const bus_message& m) {
    auto x = m.get<int>();
    std::lock_guard<std::mutex> guard{mtx};
    seen.push_back(x ? *x : -1);
    cv.notify_all();
  }));
  for (int i = 0; i < n; ++i)
    REQUIRE(!b.publish("seq", i));
  std::unique_lock<std::mutex> guard{mtx};
  REQUIRE(cv.wait_for(guard, patience, [&] { return seen.size() == n; }));
  for (int i = 0; i < n; ++i)
    REQUIRE(seen[static_cast<size_t>(i)] == i);
}

TEST_CASE_METHOD(fixture,
                 "several plain threads publish concurrently - each "
                 "in order and the callback never overlaps itself",
                 "[bus]") {
  constexpr int publishers = 4;
  constexpr int per_publisher = 5000;
  std::atomic<bool> inside{false};
  std::atomic<int> overlaps{0};
  std::mutex mtx;
  std::condition_variable cv;
  std::map<int, std::vector<int>> by_publisher;
  size_t total = 0;
  subscription_options opts;
  opts.capacity = 64; // small: publishers also block now and then
  auto s = value_of(b.subscribe("load.*", opts, [&](const bus_message& m) {
    if (inside.exchange(true))
      ++overlaps;
    auto xs = m.get<std::vector<int>>();
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (xs && xs->size() == 2)
        by_publisher[(*xs)[0]].push_back((*xs)[1]);
      ++total;
      cv.notify_all();
    }
    inside = false;
  }));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int p = 0; p < publishers; ++p)
    threads.emplace_back([&, p] {
      auto subject = "load." + std::to_string(p);
      for (int i = 0; i < per_publisher; ++i)
        if (b.publish(subject, std::vector<int>{p, i}))
          ++failures;
    });
  for (auto& t : threads)
    t.join();
  CHECK(failures == 0);
  {
    std::unique_lock<std::mutex> guard{mtx};
    REQUIRE(cv.wait_for(guard, patience,
                        [&] { return total == publishers * per_publisher; }));
  }
  CHECK(overlaps == 0);
  for (auto& [p, xs] : by_publisher) {
    CAPTURE(p);
    REQUIRE(xs.size() == per_publisher);
    CHECK(std::is_sorted(xs.begin(), xs.end()));
  }
  CHECK(s.stats().dropped == 0);
}

TEST_CASE_METHOD(fixture,
                 "a message reaches every plain subscriber and one "
                 "member of each queue group",
                 "[bus]") {
  recorder plain1;
  recorder plain2;
  recorder g1;
  recorder g2;
  subscription_options grp;
  grp.queue_group = "workers";
  auto p1 = value_of(b.subscribe("jobs.>", plain1.callback()));
  auto p2 = value_of(b.subscribe("jobs.new", plain2.callback()));
  auto m1 = value_of(b.subscribe("jobs.*", grp, g1.callback()));
  auto m2 = value_of(b.subscribe("jobs.new", grp, g2.callback()));
  constexpr size_t n = 100;
  for (size_t i = 0; i < n; ++i)
    REQUIRE(!b.publish("jobs.new", std::to_string(i)));
  REQUIRE(plain1.wait_for(n));
  REQUIRE(plain2.wait_for(n));
  REQUIRE(eventually([&] { return g1.size() + g2.size() == n; }));
  CHECK(g1.size() > 0);
  CHECK(g2.size() > 0);
}

TEST_CASE_METHOD(fixture,
                 "queue group members split messages exactly once "
                 "and rebalance when a member leaves",
                 "[bus]") {
  subscription_options grp;
  grp.queue_group = "q";
  recorder r[3];
  std::optional<bus_subscription> subs[3];
  for (int i = 0; i < 3; ++i)
    subs[i] = value_of(b.subscribe("tasks", grp, r[i].callback()));
  auto published = [](size_t from, size_t to) {
    std::set<std::string> xs;
    for (auto i = from; i < to; ++i)
      xs.insert(std::to_string(i));
    return xs;
  };
  auto received = [&](std::initializer_list<int> members) {
    std::multiset<std::string> xs;
    for (auto i : members)
      for (auto& p : r[i].payloads())
        xs.insert(p);
    return xs;
  };
  for (size_t i = 0; i < 3000; ++i)
    REQUIRE(!b.publish("tasks", std::to_string(i)));
  REQUIRE(eventually(
    [&] { return r[0].size() + r[1].size() + r[2].size() == 3000; }));
  auto first = received({0, 1, 2});
  CHECK(std::set<std::string>(first.begin(), first.end())
        == published(0, 3000));
  CHECK(first.size() == 3000); // no duplicates
  for (auto& x : r)
    CHECK(x.size() > 0);
  // Member 1 leaves: the others take everything from now on.
  subs[1]->unsubscribe();
  CHECK_FALSE(subs[1]->active());
  auto left_with = r[1].size();
  for (size_t i = 3000; i < 4000; ++i)
    REQUIRE(!b.publish("tasks", std::to_string(i)));
  REQUIRE(
    eventually([&] { return r[0].size() + r[2].size() == 4000 - left_with; }));
  CHECK(r[1].size() == left_with);
  auto all = received({0, 1, 2});
  CHECK(all.size() == 4000);
  CHECK(std::set<std::string>(all.begin(), all.end()) == published(0, 4000));
}

// -- request/reply ------------------------------------------------------------

TEST_CASE_METHOD(fixture, "a request gets the reply of a subscriber", "[bus]") {
  auto s = value_of(b.subscribe("quote", [this](const bus_message& m) {
    static_cast<void>(b.reply(m, "quote for " + m.payload));
  }));
  auto r = b.request("quote", "ACME", patience);
  REQUIRE(r);
  CHECK(r->payload == "quote for ACME");
  CHECK(r->subject.rfind("_INBOX.", 0) == 0);
  SECTION("with typed payloads both ways") {
    auto t = value_of(b.subscribe("price", [this](const bus_message& m) {
      auto p = m.get<price>();
      if (p) {
        p->value *= 2;
        static_cast<void>(b.reply(m, *p));
      }
    }));
    auto r2 = b.request("price", price{"ACME", 4.0}, patience);
    REQUIRE(r2);
    auto p = r2->get<price>();
    REQUIRE(p);
    CHECK(p->value == 8.0);
  }
  SECTION("many requests from several threads each get their own reply") {
    std::vector<std::thread> threads;
    std::atomic<int> wrong{0};
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < 200; ++i) {
          auto x = std::to_string(t) + "/" + std::to_string(i);
          auto y = b.request("quote", x, patience);
          if (!y || y->payload != "quote for " + x)
            ++wrong;
        }
      });
    for (auto& th : threads)
      th.join();
    CHECK(wrong == 0);
  }
}

TEST_CASE_METHOD(fixture,
                 "a request with nobody listening fails at once "
                 "with no_responders",
                 "[bus]") {
  // With a long timeout: waiting for it would end in `timeout` instead.
  auto r = b.request("nobody.home", "hello", std::chrono::hours(1));
  REQUIRE(!r);
  CHECK(r.error() == errc::no_responders);
  CHECK(error_text(r.error())
        == "no subscriber for a request on 'nobody.home'");
}

TEST_CASE_METHOD(fixture, "a request without a reply times out", "[bus]") {
  recorder r;
  auto s = value_of(b.subscribe("silent", r.callback()));
  auto x = b.request("silent", "hello?", 50ms);
  REQUIRE(!x);
  CHECK(x.error() == troupe::errc::timeout);
  CHECK_THAT(error_text(x.error()),
             Catch::StartsWith("no reply to a request on 'silent' within"));
  REQUIRE(r.wait_for(1));
  // A late reply is dropped: the request is gone.
  auto req = r.messages().front();
  CHECK(!req.reply_to.empty());
  CHECK(!b.reply(req, "too late"));
}

TEST_CASE_METHOD(fixture,
                 "replying to a message that expects no reply is an "
                 "error",
                 "[bus]") {
  bus_message m;
  m.subject = "x";
  CHECK(b.reply(m, "y") == errc::invalid_subject);
}

// -- overflow policies --------------------------------------------------------

namespace {

// Subscribes with `policy` and a capacity of 4, holds the callback at a gate
// on message "0", publishes "1" to "10" meanwhile, then opens the gate.
// Returns what the callback got and the final counters.
std::pair<std::vector<std::string>, subscription_stats>
overflow_run(bus& b, bus_overflow policy) {
  gate g;
  recorder r;
  subscription_options opts;
  opts.capacity = 4;
  opts.policy = policy;
  auto s = value_of(b.subscribe("burst", opts, [&](const bus_message& m) {
    if (m.payload == "0")
      g.pass();
    r.add(m);
  }));
  REQUIRE(!b.publish("burst", "0"));
  REQUIRE(g.wait_for_waiting(1)); // the callback holds "0"
  for (int i = 1; i <= 10; ++i)
    REQUIRE(!b.publish("burst", std::to_string(i)));
  auto held = s.stats();
  CHECK(held.pending == 4);
  CHECK(held.dropped == 6);
  CHECK(held.delivered == 0);
  g.open();
  REQUIRE(r.wait_for(5));
  REQUIRE(eventually([&] { return s.stats().delivered == 5; }));
  return {r.payloads(), s.stats()};
}

} // namespace

TEST_CASE_METHOD(fixture,
                 "drop_newest keeps the oldest messages and counts "
                 "the dropped ones",
                 "[bus]") {
  auto [got, stats] = overflow_run(b, bus_overflow::drop_newest);
  CHECK(got == std::vector<std::string>{"0", "1", "2", "3", "4"});
  CHECK(stats.delivered == 5);
  CHECK(stats.dropped == 6);
  CHECK(stats.blocked == 0);
  CHECK(stats.pending == 0);
}

TEST_CASE_METHOD(fixture,
                 "drop_oldest keeps the newest messages and counts "
                 "the dropped ones",
                 "[bus]") {
  auto [got, stats] = overflow_run(b, bus_overflow::drop_oldest);
  CHECK(got == std::vector<std::string>{"0", "7", "8", "9", "10"});
  CHECK(stats.delivered == 5);
  CHECK(stats.dropped == 6);
  CHECK(stats.blocked == 0);
}

TEST_CASE_METHOD(fixture,
                 "block makes the publisher wait for room and loses "
                 "nothing",
                 "[bus]") {
  gate g;
  recorder r;
  subscription_options opts;
  opts.capacity = 4;
  opts.policy = bus_overflow::block;
  opts.max_wait = patience;
  auto s = value_of(b.subscribe("slow", opts, [&](const bus_message& m) {
    if (m.payload == "0")
      g.pass();
    r.add(m);
  }));
  REQUIRE(!b.publish("slow", "0"));
  REQUIRE(g.wait_for_waiting(1));
  for (int i = 1; i <= 4; ++i) // fills the buffer without waiting
    REQUIRE(!b.publish("slow", std::to_string(i)));
  CHECK(s.stats().blocked == 0);
  std::atomic<bool> returned{false};
  std::thread publisher{[&] {
    static_cast<void>(b.publish("slow", "5"));
    returned = true;
  }};
  REQUIRE(eventually([&] { return s.stats().blocked == 1; }));
  CHECK_FALSE(returned); // it is waiting for room
  CHECK(s.stats().pending == 4);
  g.open();
  publisher.join();
  CHECK(returned);
  REQUIRE(r.wait_for(6));
  CHECK(r.payloads() == std::vector<std::string>{"0", "1", "2", "3", "4", "5"});
  REQUIRE(eventually([&] { return s.stats().delivered == 6; }));
  CHECK(s.stats().dropped == 0);
  CHECK(s.stats().blocked == 1);
}

TEST_CASE_METHOD(fixture, "block drops the message after max_wait", "[bus]") {
  gate g;
  subscription_options opts;
  opts.capacity = 1;
  opts.policy = bus_overflow::block;
  opts.max_wait = 20ms;
  auto s = value_of(b.subscribe("stuck", opts, [&](const bus_message& m) {
    if (m.payload == "0")
      g.pass();
  }));
  REQUIRE(!b.publish("stuck", "0"));
  REQUIRE(g.wait_for_waiting(1));
  REQUIRE(!b.publish("stuck", "1")); // fills the buffer
  REQUIRE(!b.publish("stuck", "2")); // waits 20ms, then dropped
  auto st = s.stats();
  CHECK(st.blocked == 1);
  CHECK(st.dropped == 1);
  CHECK(st.pending == 1);
  g.open();
  REQUIRE(eventually([&] { return s.stats().delivered == 2; }));
}

TEST_CASE_METHOD(fixture,
                 "a callback publishing to its own full block "
                 "subscription drops instead of waiting for itself",
                 "[bus]") {
  subscription_options opts;
  opts.capacity = 1;
  opts.policy = bus_overflow::block;
  opts.max_wait = patience;
  std::atomic<int> calls{0};
  std::atomic<int> errors{0};
  recorder done;
  auto s = value_of(b.subscribe("echo", opts, [&](const bus_message& m) {
    if (++calls == 1) {
      // The first fills the buffer, the second would wait for this very
      // callback: it is dropped at once.
      if (b.publish("echo", "a") || b.publish("echo", "b"))
        ++errors;
    }
    done.add(m);
  }));
  REQUIRE(!b.publish("echo", "go"));
  REQUIRE(done.wait_for(2));
  REQUIRE(eventually([&] { return s.stats().delivered == 2; }));
  CHECK(errors == 0);
  CHECK(done.payloads() == std::vector<std::string>{"go", "a"});
  CHECK(s.stats().dropped == 1);
}

// -- unsubscribing ------------------------------------------------------------

TEST_CASE_METHOD(fixture, "destroying the handle unsubscribes", "[bus]") {
  recorder r;
  recorder witness;
  auto w = value_of(b.subscribe("raii", witness.callback()));
  {
    auto s = value_of(b.subscribe("raii", r.callback()));
    REQUIRE(!b.publish("raii", "1"));
    REQUIRE(r.wait_for(1));
  }
  REQUIRE(!b.publish("raii", "2"));
  REQUIRE(witness.wait_for(2)); // "2" was delivered to the witness...
  CHECK(r.payloads() == std::vector<std::string>{"1"}); // ...not to r
  SECTION("a moved-from handle is empty and the move target owns it") {
    auto s = value_of(b.subscribe("raii", r.callback()));
    bus_subscription t{std::move(s)};
    CHECK_FALSE(s.active()); // NOLINT(bugprone-use-after-move)
    CHECK(t.active());
    t = bus_subscription{};
    CHECK_FALSE(t.active());
    REQUIRE(!b.publish("raii", "3"));
    REQUIRE(witness.wait_for(3));
    CHECK(r.payloads() == std::vector<std::string>{"1"});
  }
}

TEST_CASE_METHOD(fixture,
                 "unsubscribe waits for a running callback and "
                 "drops what is buffered",
                 "[bus]") {
  gate g;
  std::atomic<bool> finished{false};
  std::atomic<int> calls{0};
  auto s = value_of(b.subscribe("held", [&](const bus_message&) {
    ++calls;
    g.pass();
    finished = true;
  }));
  REQUIRE(!b.publish("held", "0"));
  REQUIRE(g.wait_for_waiting(1));
  for (int i = 0; i < 3; ++i)
    REQUIRE(!b.publish("held", "more"));
  CHECK(s.stats().pending == 3);
  std::atomic<bool> saw_finished{false};
  std::atomic<int> calls_at_return{0};
  std::thread t{[&] {
    s.unsubscribe();
    saw_finished = finished.load();
    calls_at_return = calls.load();
  }};
  g.open();
  t.join();
  CHECK(saw_finished); // unsubscribe returned only after the callback
  CHECK_FALSE(s.active());
  // Whatever had not run when unsubscribe began was dropped, and the
  // counters stay readable.
  auto st = s.stats();
  CHECK(st.delivered == static_cast<uint64_t>(calls_at_return.load()));
  CHECK(st.delivered + st.dropped == 4);
  CHECK(st.pending == 0);
  recorder witness;
  auto w = value_of(b.subscribe("held", witness.callback()));
  REQUIRE(!b.publish("held", "after"));
  REQUIRE(witness.wait_for(1));
  CHECK(calls == calls_at_return);
}

TEST_CASE_METHOD(fixture, "a callback may unsubscribe itself", "[bus]") {
  std::optional<bus_subscription> s;
  std::atomic<int> calls{0};
  std::atomic<bool> unsubscribed{false};
  recorder witness;
  auto w = value_of(b.subscribe("once", witness.callback()));
  s = value_of(b.subscribe("once", [&](const bus_message&) {
    ++calls;
    s->unsubscribe();
    unsubscribed = true;
  }));
  for (int i = 0; i < 5; ++i)
    REQUIRE(!b.publish("once", std::to_string(i)));
  REQUIRE(witness.wait_for(5));
  REQUIRE(eventually([&] { return unsubscribed.load(); }));
  CHECK_FALSE(s->active());
  REQUIRE(!b.publish("once", "after"));
  REQUIRE(witness.wait_for(6));
  CHECK(calls == 1);
}

TEST_CASE_METHOD(fixture,
                 "a callback that throws is counted and the "
                 "subscription carries on",
                 "[bus]") {
  recorder r;
  auto s = value_of(b.subscribe("fragile", [&](const bus_message& m) {
    if (m.payload == "bad")
      throw std::runtime_error("bad message");
    r.add(m);
  }));
  REQUIRE(!b.publish("fragile", "good"));
  REQUIRE(!b.publish("fragile", "bad"));
  REQUIRE(!b.publish("fragile", "good again"));
  REQUIRE(r.wait_for(2));
  REQUIRE(eventually([&] { return s.stats().delivered == 3; }));
  CHECK(s.stats().failed == 1);
  CHECK(r.payloads() == std::vector<std::string>{"good", "good again"});
}

// -- actors and the end of the bus --------------------------------------------

TEST_CASE_METHOD(fixture, "actors publish on the bus like any thread",
                 "[bus]") {
  recorder r;
  auto s = value_of(b.subscribe("from.actor", r.callback()));
  auto publisher = node.spawn([this](caf::event_based_actor*) -> caf::behavior {
    return {
      [this](int32_t n) {
        for (int32_t i = 0; i < n; ++i)
          static_cast<void>(b.publish("from.actor", std::to_string(i)));
      },
    };
  });
  caf::anon_send(publisher, int32_t{3});
  REQUIRE(r.wait_for(3));
  CHECK(r.payloads() == std::vector<std::string>{"0", "1", "2"});
  caf::anon_send_exit(publisher, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(fixture,
                 "a blocking subscription runs its callback on a "
                 "thread of its own",
                 "[bus]") {
  recorder r;
  std::atomic<bool> other_thread{false};
  auto main_thread = std::this_thread::get_id();
  subscription_options opts;
  opts.blocking = true;
  auto s = value_of(b.subscribe("io", opts, [&](const bus_message& m) {
    other_thread = std::this_thread::get_id() != main_thread;
    r.add(m);
  }));
  for (int i = 0; i < 3; ++i)
    REQUIRE(!b.publish("io", std::to_string(i)));
  REQUIRE(r.wait_for(3));
  CHECK(r.payloads() == std::vector<std::string>{"0", "1", "2"});
  CHECK(other_thread);
}

TEST_CASE_METHOD(fixture, "after node stop the bus drops instead of blocking",
                 "[bus]") {
  subscription_options opts;
  opts.capacity = 1;
  opts.max_wait = patience; // would make a publisher wait this long
  auto s = value_of(b.subscribe("late", opts, [](const bus_message&) {}));
  node.stop(); // ends the subscription's actor
  // Once the actor is gone, publishing returns at once and counts a drop.
  size_t published = 0;
  REQUIRE(eventually([&] {
    ++published;
    static_cast<void>(b.publish("late", "x"));
    return s.stats().dropped > 0;
  }));
  auto st = s.stats();
  CHECK(st.delivered + st.dropped == published);
  CHECK(st.pending == 0);
}

TEST_CASE("an ended bus refuses work and fails waiting requests", "[bus]") {
  fixture f;
  auto b = std::make_unique<bus>(f.node);
  gate g;
  auto s = value_of(b->subscribe("late", [&](const bus_message&) {
    g.pass(); // never replies
  }));
  std::optional<caf::expected<bus_message>> result;
  std::thread requester{[&] { result = b->request("late", "x", patience); }};
  REQUIRE(g.wait_for_waiting(1));
  g.open();
  b.reset(); // ends every subscription, fails the request
  requester.join();
  REQUIRE(result);
  REQUIRE(!*result);
  CHECK(result->error() == troupe::errc::closed);
  CHECK_FALSE(s.active());
}

// -- the router hook ----------------------------------------------------------

namespace {

// A router double: records interest changes and routed messages, and claims
// one remote receiver for subjects under "remote.".
class fake_router : public bus_router {
public:
  void interest_changed(bool added, const bus_interest& x) override {
    std::lock_guard<std::mutex> guard{mtx};
    events.emplace_back((added ? "+" : "-") + x.pattern + "/" + x.queue_group);
  }

  size_t route(const bus_message_view& m,
               const std::vector<std::string_view>& served) override {
    std::lock_guard<std::mutex> guard{mtx};
    routed.push_back(bus_message{std::string{m.subject},
                                 std::string{m.reply_to},
                                 std::string{m.payload}, m.type});
    served_groups.emplace_back(served.begin(), served.end());
    cv.notify_all();
    return m.subject.rfind("remote.", 0) == 0 ? 1 : 0;
  }

  bool wait_for_routed(size_t n) {
    std::unique_lock<std::mutex> guard{mtx};
    return cv.wait_for(guard, patience, [&] { return routed.size() >= n; });
  }

  std::mutex mtx;
  std::condition_variable cv;
  std::vector<std::string> events;
  std::vector<bus_message> routed;
  std::vector<std::vector<std::string>> served_groups;
};

} // namespace

TEST_CASE_METHOD(fixture,
                 "a router hears interest changes and routes local "
                 "publications but not injected ones",
                 "[bus]") {
  recorder r;
  recorder members;
  auto early = value_of(b.subscribe("early.>", r.callback()));
  auto router = std::make_shared<fake_router>();
  auto interest = b.attach_router(router);
  // The bus's reply subjects are interest too, so replies can come back.
  REQUIRE(interest.size() == 2);
  CHECK(
    std::count(interest.begin(), interest.end(), bus_interest{"early.>", ""})
    == 1);
  CHECK(std::any_of(interest.begin(), interest.end(), [](auto& x) {
    return x.pattern.rfind("_INBOX.", 0) == 0;
  }));
  subscription_options grp;
  grp.queue_group = "g";
  {
    auto a = value_of(b.subscribe("x.*", grp, members.callback()));
    auto a2 = value_of(b.subscribe("x.*", grp, members.callback())); // no event
    CHECK(!b.publish("x.1", "local"));
    REQUIRE(router->wait_for_routed(1));
  }
  {
    std::lock_guard<std::mutex> guard{router->mtx};
    CHECK(router->events == std::vector<std::string>{"+x.*/g", "-x.*/g"});
    CHECK(router->routed[0].payload == "local");
    CHECK(router->served_groups[0] == std::vector<std::string>{"g"});
  }
  // Injected messages reach local subscribers and never the router.
  CHECK(!b.inject(bus_message_view{"early.bird", "", "from afar", 0}, {}));
  REQUIRE(r.wait_for(1));
  CHECK(r.payloads() == std::vector<std::string>{"from afar"});
  CHECK(!b.publish("early.end", "local again"));
  REQUIRE(router->wait_for_routed(2));
  {
    std::lock_guard<std::mutex> guard{router->mtx};
    REQUIRE(router->routed.size() == 2);
    CHECK(router->routed[1].payload == "local again");
  }
  b.detach_router();
}

TEST_CASE_METHOD(fixture,
                 "inject serves only the listed queue groups and "
                 "plain subscribers on request",
                 "[bus]") {
  recorder plain;
  recorder member;
  subscription_options grp;
  grp.queue_group = "g";
  auto p = value_of(b.subscribe("in", plain.callback()));
  auto m = value_of(b.subscribe("in", grp, member.callback()));
  inject_options only_group;
  only_group.plain = false;
  only_group.queue_groups = {"g"};
  CHECK(!b.inject(bus_message_view{"in", "", "for the group", 0}, only_group));
  inject_options only_plain; // plain, no group
  CHECK(!b.inject(bus_message_view{"in", "", "for plain", 0}, only_plain));
  REQUIRE(member.wait_for(1));
  REQUIRE(plain.wait_for(1));
  // Markers published last show that nothing else arrived.
  CHECK(!b.publish("in", "end"));
  REQUIRE(member.wait_for(2));
  REQUIRE(plain.wait_for(2));
  CHECK(member.payloads() == std::vector<std::string>{"for the group", "end"});
  CHECK(plain.payloads() == std::vector<std::string>{"for plain", "end"});
}

TEST_CASE_METHOD(fixture,
                 "a request answered through the router is not "
                 "refused with no_responders",
                 "[bus]") {
  auto router = std::make_shared<fake_router>();
  static_cast<void>(b.attach_router(router));
  std::optional<caf::expected<bus_message>> result;
  std::thread requester{
    [&] { result = b.request("remote.svc", "ping", patience); }};
  REQUIRE(router->wait_for_routed(1));
  bus_message req;
  {
    std::lock_guard<std::mutex> guard{router->mtx};
    req = router->routed[0];
  }
  // The reply comes back from the "remote node" through inject.
  CHECK(!b.inject(bus_message_view{req.reply_to, "", "pong", 0}, {}));
  requester.join();
  REQUIRE(result);
  REQUIRE(*result);
  CHECK((*result)->payload == "pong");
  b.detach_router();
}

TEST_CASE("every bus error code has a name", "[bus][errc]") {
  CHECK(to_string(errc::invalid_subject) == "invalid_subject");
  CHECK(to_string(errc::no_responders) == "no_responders");
  CHECK(to_string(errc::link_lost) == "link_lost");
  CHECK(to_string(static_cast<errc>(200)) == "errc(200)");
}

} // namespace troupe::bus
