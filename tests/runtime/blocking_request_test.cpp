#include "troupe/runtime/blocking_request.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/response_promise.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>
#include <catch2/catch.hpp>

#include "troupe/runtime/errc.hpp"

namespace troupe {

namespace {

using namespace std::chrono_literals;

// Every wait below that should end is bounded by `patience`.
constexpr auto patience = std::chrono::seconds(20);

// Answers an int with its double, a string with the string and its length,
// "nothing" with no value, a negative int with an error, and keeps the
// promise of a `double` request unanswered.
caf::behavior server(caf::event_based_actor* self) {
  return {
    [](int32_t x) -> caf::result<int32_t> {
      if (x < 0)
        return caf::make_error(errc::invalid_option_value, "negative");
      return x * 2;
    },
    [](const std::string& x) {
      if (x == "nothing")
        return caf::make_message();
      return caf::make_message(x, static_cast<uint64_t>(x.size()));
    },
    [self](double) { return self->make_response_promise<int32_t>(); },
  };
}

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::actor srv = sys.spawn(server);

  ~fixture() {
    caf::anon_send_exit(srv, caf::exit_reason::user_shutdown);
  }
};

} // namespace

TEST_CASE_METHOD(fixture, "blocking_request returns the reply",
                 "[runtime][blocking_request]") {
  auto x = blocking_request<int32_t>(sys, srv, patience, int32_t{21});
  REQUIRE(x);
  CHECK(*x == 42);
}

TEST_CASE_METHOD(fixture, "blocking_request returns a reply of several values",
                 "[runtime][blocking_request]") {
  auto x = blocking_request<std::tuple<std::string, uint64_t>>(
    sys, srv, patience, std::string{"four"});
  REQUIRE(x);
  CHECK(std::get<0>(*x) == "four");
  CHECK(std::get<1>(*x) == 4);
}

TEST_CASE_METHOD(fixture,
                 "blocking_request<void> returns no error for a reply "
                 "without a value",
                 "[runtime][blocking_request]") {
  caf::error err
    = blocking_request<void>(sys, srv, patience, std::string{"nothing"});
  CHECK(!err);
}

TEST_CASE_METHOD(fixture, "blocking_request returns the error replied",
                 "[runtime][blocking_request]") {
  auto x = blocking_request<int32_t>(sys, srv, patience, int32_t{-1});
  REQUIRE_FALSE(x);
  CHECK(x.error() == errc::invalid_option_value);
  CHECK(error_text(x.error()) == "negative");
  auto err = blocking_request<void>(sys, srv, patience, int32_t{-1});
  CHECK(err == errc::invalid_option_value);
}

TEST_CASE_METHOD(fixture,
                 "blocking_request times out like a request in an actor",
                 "[runtime][blocking_request]") {
  auto start = std::chrono::steady_clock::now();
  auto x = blocking_request<int32_t>(sys, srv, 100ms, 1.5);
  auto waited = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(x);
  CHECK(x.error() == caf::sec::request_timeout);
  CHECK(waited >= 100ms);
  CHECK(waited < patience);
}

TEST_CASE_METHOD(fixture,
                 "blocking_request to an actor that is gone fails at once",
                 "[runtime][blocking_request]") {
  caf::scoped_actor self{sys};
  self->monitor(srv);
  caf::anon_send_exit(srv, caf::exit_reason::user_shutdown);
  self->receive([](caf::down_msg&) {}, caf::after(patience) >> [] {});
  auto x = blocking_request<int32_t>(sys, srv, patience, int32_t{1});
  REQUIRE_FALSE(x);
  CHECK(x.error() == caf::sec::request_receiver_down);
}

TEST_CASE_METHOD(fixture, "blocking_request may be called from many threads",
                 "[runtime][blocking_request]") {
  constexpr int threads = 8;
  constexpr int calls = 50;
  std::vector<int> wrong(threads, 0);
  std::vector<std::thread> xs;
  for (int t = 0; t < threads; ++t)
    xs.emplace_back([&, t] {
      for (int i = 0; i < calls; ++i) {
        auto x = blocking_request<int32_t>(sys, srv, patience, int32_t{i});
        if (!x || *x != 2 * i)
          ++wrong[t];
      }
    });
  for (auto& x : xs)
    x.join();
  CHECK(wrong == std::vector<int>(threads, 0));
}

} // namespace troupe
