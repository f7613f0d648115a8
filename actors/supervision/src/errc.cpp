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
  troupe::add_error_category(cfg, caf::atom("troupe_sup"), [](uint8_t code) {
    return to_string(static_cast<errc>(code));
  });
}

} // namespace troupe::supervision
