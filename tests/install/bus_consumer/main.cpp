// Uses only the installed troupe::bus: a request answered by a subscriber.

#include <chrono>
#include <iostream>

#include "troupe/bus/bus.hpp"
#include "troupe/runtime/run.hpp"

int main(int argc, char** argv) {
  return troupe::run<troupe::config>(
    argc, argv, [](troupe::node& n, const troupe::config&) {
      troupe::bus::bus b{n};
      auto greeter
        = b.subscribe("greet.*", [&b](const troupe::bus::bus_message& m) {
            static_cast<void>(b.reply(m, "hello " + m.payload));
          });
      if (!greeter) {
        std::cerr << troupe::error_text(greeter.error()) << std::endl;
        return 1;
      }
      auto answer = b.request("greet.en", "world", std::chrono::seconds(10));
      if (!answer) {
        std::cerr << troupe::error_text(answer.error()) << std::endl;
        return 1;
      }
      std::cout << "bus reply: " << answer->payload << std::endl;
      return 0;
    });
}
