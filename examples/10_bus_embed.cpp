// Shows the message bus in a program that writes no actor code: wildcards,
// a queue group that splits the work, request/reply, and a slow subscriber
// whose bounded buffer drops the oldest messages.
//
//   main --orders.<region>.created--> audit    (orders.>: sees every order)
//                                 \-> billing  (2 members: each order to one)
//   main --request "quote"--> pricer --reply--> main
//   main --ticks 0..9--> slow (holds tick 0; buffer of 4, drop_oldest)
//
// Callbacks run on CAF's scheduler, one call at a time per subscription;
// main prints only what they collected, so the output is always the same.
//
// Expected output:
// audit saw 6 orders
// billing split them: 6 orders, each to one member
// quote for ACME: 42.50
// slow subscriber: 5 delivered, 5 dropped
// no responders: no subscriber for a request on 'nobody.home'

#include <atomic>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "troupe/bus/bus.hpp"
#include "troupe/runtime/run.hpp"

using namespace troupe::bus;
using namespace std::chrono_literals;

// Waits up to 5 s for `pred()`; the bus offers no notification for these.
template <class Pred>
bool wait_until(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!pred() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  return pred();
}

int main(int argc, char** argv) {
  return troupe::run<troupe::config>(
    argc, argv, [](troupe::node& n, const troupe::config&) {
      bus b{n};
      // Every order, whatever its region; and two billing members sharing them.
      std::atomic<int> audited{0};
      auto audit
        = b.subscribe("orders.>", [&](const bus_message&) { ++audited; });
      std::atomic<int> billed[2] = {0, 0};
      subscription_options billing;
      billing.queue_group = "billing";
      auto bill0 = b.subscribe("orders.*.created", billing,
                               [&](const bus_message&) { ++billed[0]; });
      auto bill1 = b.subscribe("orders.*.created", billing,
                               [&](const bus_message&) { ++billed[1]; });
      // A service that answers requests on "quote".
      auto pricer = b.subscribe("quote", [&b](const bus_message& m) {
        static_cast<void>(b.reply(m, m.payload + ": 42.50"));
      });
      if (!audit || !bill0 || !bill1 || !pricer)
        return 1;
      for (auto region : {"eu", "us", "eu", "ap", "us", "eu"})
        static_cast<void>(
          b.publish(std::string{"orders."} + region + ".created", "order"));
      if (!wait_until([&] { return audited + billed[0] + billed[1] == 12; }))
        return 1;
      std::cout << "audit saw " << audited << " orders\n"
                << "billing split them: " << billed[0] + billed[1]
                << " orders, each to one member\n";
      // Request/reply: waits up to 5 s for the pricer's answer.
      auto quote = b.request("quote", "ACME", 5s);
      std::cout << "quote for " << (quote ? quote->payload : "-") << '\n';
      // A slow subscriber: it holds tick 0 until main has published ticks
      // 1..9, of which its buffer of 4 keeps the newest (6..9).
      subscription_options slow_opts;
      slow_opts.capacity = 4;
      slow_opts.policy = bus_overflow::drop_oldest;
      std::atomic<bool> inside{false};
      std::atomic<bool> go{false};
      auto slow = b.subscribe("ticks", slow_opts, [&](const bus_message&) {
        inside = true;
        wait_until([&] { return go.load(); });
      });
      static_cast<void>(b.publish("ticks", "0"));
      wait_until([&] { return inside.load(); });
      for (int i = 1; i < 10; ++i)
        static_cast<void>(b.publish("ticks", std::to_string(i)));
      go = true;
      wait_until([&] { return slow->stats().delivered == 5; });
      std::cout << "slow subscriber: " << slow->stats().delivered
                << " delivered, " << slow->stats().dropped << " dropped\n";
      // Nobody listens on "nobody.home": the request fails at once.
      auto none = b.request("nobody.home", "hello?", 5s);
      std::cout << "no responders: " << troupe::error_text(none.error())
                << '\n';
      return 0;
    });
}
