#include "troupe/bus/errc.hpp"

#include <caf/actor_system_config.hpp>

namespace troupe::bus {

std::string to_string(errc x) {
  switch (x) {
    case errc::invalid_subject:
      return "invalid_subject";
    case errc::no_responders:
      return "no_responders";
  }
  return "errc(" + std::to_string(static_cast<int>(x)) + ")";
}

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_error_category(
    caf::atom("troupe_bus"),
    [](uint8_t code, caf::atom_value, const caf::message& ctx) {
      return troupe::detail::render_error(to_string(static_cast<errc>(code)),
                                          ctx);
    });
}

} // namespace troupe::bus
