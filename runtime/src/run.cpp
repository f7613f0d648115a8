#include "troupe/runtime/run.hpp"

#include <iostream>

namespace troupe::detail {

std::optional<int> parse_or_exit_code(config& cfg, int argc, char** argv) {
  auto err = cfg.parse(argc, argv);
  auto prog
    = cfg.program_name().empty() ? std::string{"troupe"} : cfg.program_name();
  if (err) {
    std::cerr << prog << ": " << error_text(err) << "\nTry '" << prog
              << " --help' for the options.\n";
    return 2;
  }
  if (cfg.help_printed()) {
    // CAF prints --long-help and --dump-config itself; --help is ours.
    if (cfg.help_requested())
      std::cout << cfg.help_text();
    return 0;
  }
  return std::nullopt;
}

int report_config_error(const config& cfg, const caf::error& err) {
  std::cerr << cfg.program_name() << ": " << error_text(err) << '\n';
  return 2;
}

int report_startup_failure(const config& cfg, const char* what) {
  std::cerr << cfg.name << ": cannot start: " << what << '\n';
  return 1;
}

} // namespace troupe::detail
