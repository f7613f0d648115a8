#include "troupe/runtime/run.hpp"

#include <iostream>

namespace troupe::detail {

std::optional<int> parse_or_exit_code(config& cfg, int argc, char** argv) {
  auto prog = argc > 0 ? std::string{argv[0]} : std::string{"troupe"};
  if (auto pos = prog.rfind('/'); pos != std::string::npos)
    prog.erase(0, pos + 1);
  if (auto err = cfg.parse(argc, argv)) {
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
