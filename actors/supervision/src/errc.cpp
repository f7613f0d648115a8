#include "troupe/supervision/errc.hpp"

#include <caf/actor_system_config.hpp>

namespace troupe::supervision {

std::string to_string(errc x) {
  switch (x) {
    case errc::restart_intensity:
      return "restart_intensity";
    case errc::no_such_child:
      return "no_such_child";
    case errc::pool_running:
      return "pool_running";
  }
  return "errc(" + std::to_string(static_cast<int>(x)) + ")";
}

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_error_category(
    caf::atom("troupe_sup"),
    [](uint8_t code, caf::atom_value, const caf::message& ctx) {
      return troupe::detail::render_error(to_string(static_cast<errc>(code)),
                                          ctx);
    });
}

} // namespace troupe::supervision
