#include "troupe/runtime/errc.hpp"

namespace troupe {

std::string to_string(errc x) {
  switch (x) {
    case errc::unknown_option:
      return "unknown_option";
    case errc::invalid_option_value:
      return "invalid_option_value";
    case errc::cannot_open_file:
      return "cannot_open_file";
    case errc::shutting_down:
      return "shutting_down";
    case errc::closed:
      return "closed";
    case errc::registry_mismatch:
      return "registry_mismatch";
    case errc::restart_intensity:
      return "restart_intensity";
    case errc::no_such_child:
      return "no_such_child";
    case errc::timeout:
      return "timeout";
    case errc::pool_closed:
      return "pool_closed";
    case errc::pool_running:
      return "pool_running";
    case errc::job_failed:
      return "job_failed";
  }
  return "errc(" + std::to_string(static_cast<int>(x)) + ")";
}

} // namespace troupe
