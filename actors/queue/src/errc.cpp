#include "troupe/queue/errc.hpp"

#include <caf/actor_system_config.hpp>

#include "troupe/queue/protocol.hpp"

namespace troupe::queue {

std::string to_string(errc x) {
  switch (x) {
    case errc::no_such_queue:
      return "no_such_queue";
    case errc::store_failed:
      return "store_failed";
  }
  return "errc(" + std::to_string(static_cast<int>(x)) + ")";
}

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<worker_hello>("troupe.worker_hello");
  cfg.add_message_type<task_msg>("troupe.task_msg");
  cfg.add_message_type<result_msg>("troupe.result_msg");
  troupe::add_error_category(cfg, caf::atom("troupe_q"), [](uint8_t code) {
    return to_string(static_cast<errc>(code));
  });
}

} // namespace troupe::queue
