#include "troupe/bus/errc.hpp"

#include <caf/actor_system_config.hpp>

namespace troupe::bus {

std::string to_string(errc x) {
  switch (x) {
    case errc::invalid_subject:
      return "invalid_subject";
    case errc::no_responders:
      return "no_responders";
    case errc::link_lost:
      return "link_lost";
  }
  return "errc(" + std::to_string(static_cast<int>(x)) + ")";
}

void add_message_types(caf::actor_system_config& cfg) {
  troupe::add_error_category(cfg, caf::atom("troupe_bus"), [](uint8_t code) {
    return to_string(static_cast<errc>(code));
  });
}

} // namespace troupe::bus
