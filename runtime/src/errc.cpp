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
    case errc::tls_config:
      return "tls_config";
    case errc::insecure_refused:
      return "insecure_refused";
    case errc::connect_failed:
      return "connect_failed";
    case errc::no_such_queue:
      return "no_such_queue";
    case errc::type_mismatch:
      return "type_mismatch";
    case errc::store_failed:
      return "store_failed";
    case errc::invalid_subject:
      return "invalid_subject";
    case errc::no_responders:
      return "no_responders";
  }
  return "errc(" + std::to_string(static_cast<int>(x)) + ")";
}

std::string error_text(const caf::error& err) {
  if (err.context().size() == 1 && err.context().match_element<std::string>(0))
    return err.context().get_as<std::string>(0);
  return to_string(err);
}

} // namespace troupe
