#pragma once

#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system_config.hpp>
#include <caf/timespan.hpp>

#include "troupe/runtime/fwd.hpp"

namespace troupe {

/// The configuration of a troupe node: CAF's own `actor_system_config`
/// (scheduler, middleman, ... options stay available) plus the `troupe`
/// option group below. One parser serves the command line, the program's INI
/// file (`<program>.ini`, see `parse`) and `--help`.
///
/// Programs derive from it and add their own options to the `global` group:
///
/// ```cpp
/// struct my_config : troupe::config {
///   int32_t items = 5;
///   my_config() {
///     opt_group{custom_options_, "global"}.add(items, "items", "items to
///     make");
///   }
/// };
/// ```
///
/// Unlike plain CAF, `parse` accepts long options both as `--items 5` and
/// `--items=5`, rejects unknown keys in the INI file, and checks the values of
/// the `troupe` group. A config is not thread-safe; parse it once, before the
/// node starts.
class config : public caf::actor_system_config {
public:
  // -- the troupe option group ------------------------------------------------

  /// `troupe.name`: this node's name; names its logger. Default: the
  /// program's name (`argv[0]` without its directory), also for a node whose
  /// config was never parsed.
  std::string name;

  /// `troupe.log-level`: one of trace, debug, info, warn, error, critical,
  /// off. Default: info.
  std::string log_level = "info";

  /// `troupe.log-file`: append the log to this file instead of stderr.
  std::string log_file;

  /// `troupe.shutdown-timeout`: after SIGINT/SIGTERM, how long actors get to
  /// exit before the process leaves anyway. Default: 500ms.
  caf::timespan shutdown_timeout = std::chrono::milliseconds(500);

  // -- construction and parsing -----------------------------------------------

  config();

  /// Parses the command line and then the program's INI file: `--config F`
  /// (or `--config-file F`, as before), by default `default_config_file()` in
  /// the working directory, e.g. `./counter.ini` for the program `counter`; a
  /// missing default file is fine, a missing `--config` file an error. Each
  /// program reads only its own file: CAF's `caf-application.ini`, which
  /// every program would share, is never read. The command line wins over
  /// the file. Returns an error of category `troupe` that names the bad
  /// option (and the file, for a key in it); `help_printed()` is true
  /// afterwards if `--help` or `--long-help` printed the help text, and the
  /// program should then exit 0.
  [[nodiscard]] caf::error parse(int argc, char** argv);

  /// Returns the name of the INI file the program reads unless `--config`
  /// names another: the program's name with `.ini` appended (spaces become
  /// '-': `troupe request` reads `troupe-request.ini`), whatever
  /// `--troupe.name` says. Empty before `parse`.
  std::string default_config_file() const;

  /// Returns the program's name: `argv[0]` without its directory, as
  /// `parse` found it (empty before `parse`).
  const std::string& program_name() const noexcept {
    return program_name_;
  }

  /// Returns whether the program should exit 0 after `parse` without
  /// starting: `--help` was given (print `help_text()`), or CAF printed the
  /// text for `--long-help` or `--dump-config`.
  bool help_printed() const noexcept {
    return cli_helptext_printed;
  }

  /// Returns whether `--help` (or `-h`) was given; the caller prints
  /// `help_text()`.
  bool help_requested() const noexcept {
    return help_requested_;
  }

  /// Returns the arguments that are not options (in order), e.g. the host
  /// names of `wget HOST...`. Only programs that called `positional(...)`
  /// accept any; for all others they are an error.
  const std::vector<std::string>& positional_args() const noexcept {
    return positional_;
  }

  /// Declares that the program takes arguments that are not options and how
  /// `--help` shows them, e.g. `positional("HOST[:PORT]...")`.
  void positional(std::string usage) {
    positional_usage_ = std::move(usage);
  }

  /// Sets the one-line description that `--help` prints under the usage line.
  void description(std::string text) {
    description_ = std::move(text);
  }

  /// Returns the help text: usage, the program's options and troupe's, one
  /// line each.
  std::string help_text() const;

  /// Checks the values of the `troupe` group; `parse` calls it.
  [[nodiscard]] caf::error validate() const;

protected:
  std::vector<std::string> positional_;
  std::string positional_usage_;
  std::string description_;
  std::string program_name_;
  bool help_requested_ = false;
};

} // namespace troupe
