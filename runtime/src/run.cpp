#include "troupe/runtime/run.hpp"

#include <iostream>

namespace troupe::detail {

std::optional<int> parse_or_exit_code(config& cfg, int argc, char** argv) {
  auto err = cfg.parse(argc, argv);
  auto prog
    = cfg.program_name().empty() ? std::string{"troupe"} : cfg.program_name();
  if (err) {
    std::string what;
    if (err.context().size() == 1
        && err.context().match_element<std::string>(0))
      what = err.context().get_as<std::string>(0);
    else
      what = to_string(err);
    std::cerr << prog << ": " << what << "\nTry '" << prog
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

int report_startup_failure(const config& cfg, const char* what) {
  std::cerr << cfg.name << ": cannot start: " << what << '\n';
  return 1;
}

} // namespace troupe::detail
