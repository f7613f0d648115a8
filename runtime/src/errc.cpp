#include "troupe/runtime/errc.hpp"

#include <caf/actor_system_config.hpp>

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
    case errc::timeout:
      return "timeout";
    case errc::tls_config:
      return "tls_config";
    case errc::insecure_refused:
      return "insecure_refused";
    case errc::connect_failed:
      return "connect_failed";
    case errc::type_mismatch:
      return "type_mismatch";
    case errc::job_failed:
      return "job_failed";
    case errc::busy:
      return "busy";
    case errc::refused:
      return "refused";
  }
  return "errc(" + std::to_string(static_cast<int>(x)) + ")";
}

void add_error_category(caf::actor_system_config& cfg, caf::atom_value category,
                        std::string (*name)(uint8_t code)) {
  cfg.add_error_category(
    category, [name](uint8_t code, caf::atom_value, const caf::message& ctx) {
      return detail::render_error(name(code), ctx);
    });
}

namespace detail {

std::string render_error(const std::string& name, const caf::message& ctx) {
  auto result = "troupe_error(" + name;
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    result += ", " + ctx.get_as<std::string>(0);
  else if (!ctx.empty())
    result += ", " + to_string(ctx);
  return result + ")";
}

} // namespace detail

std::string error_text(const caf::error& err) {
  if (!err) // CAF 0.17 crashes on context() of an empty error
    return "no error";
  if (err.context().size() == 1 && err.context().match_element<std::string>(0))
    return err.context().get_as<std::string>(0);
  return to_string(err);
}

} // namespace troupe
