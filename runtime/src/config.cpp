#include "troupe/runtime/config.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <caf/config_option.hpp>
#include <caf/config_option_adder.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/settings.hpp>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/message_types.hpp"

namespace troupe {

namespace {

constexpr const char* log_levels[]
  = {"trace", "debug", "info", "warn", "error", "critical", "off"};

// CAF's built-in options of the global group that troupe's help lists in its
// own words.
constexpr const char* builtin_global[]
  = {"help", "long-help", "dump-config", "config-file"};

bool is_builtin_global(caf::string_view name) {
  return std::any_of(std::begin(builtin_global), std::end(builtin_global),
                     [&](const char* x) { return name == x; });
}

std::string str(caf::string_view x) {
  return std::string{x.begin(), x.end()};
}

caf::error option_error(errc code, std::string what) {
  return caf::make_error(code, std::move(what));
}

// Returns how users spell `opt` on the command line.
std::string cli_name(const caf::config_option& opt) {
  if (opt.category() == "global")
    return "--" + str(opt.long_name());
  return "--" + str(opt.full_name());
}

// Returns the option whose short name is `c`, or null.
const caf::config_option* find_short(const caf::config_option_set& opts,
                                     char c) {
  for (auto& opt : opts)
    if (opt.short_names().find(c) != caf::string_view::npos)
      return &opt;
  return nullptr;
}

// Checks the INI file at `path` the way CAF does not: unknown keys and values
// of the wrong type are errors instead of being ignored.
caf::error check_ini(const caf::config_option_set& opts,
                     const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return option_error(errc::cannot_open_file,
                        "cannot open config file '" + path + "'");
  caf::settings raw;
  caf::config_option_set untyped;
  if (auto err = caf::actor_system_config::parse_config(in, untyped, raw))
    return option_error(errc::invalid_option_value,
                        "syntax error in config file '" + path
                          + "': " + to_string(err)
                          + " (strings need double quotes, atoms single)");
  auto check = [&](const std::string& category, const std::string& key,
                   const caf::config_value& val) -> caf::error {
    auto opt = opts.qualified_name_lookup(category, key);
    auto shown = category == "global" ? key : category + "." + key;
    if (opt == nullptr)
      return option_error(errc::unknown_option, "unknown option '" + shown
                                                  + "' in config file '" + path
                                                  + "'");
    if (opt->check(val))
      return option_error(errc::invalid_option_value,
                          "invalid value " + caf::deep_to_string(val)
                            + " for option '" + shown + "' in config file '"
                            + path + "' (expected " + str(opt->type_name())
                            + ")");
    return caf::none;
  };
  for (auto& [category, val] : raw) {
    if (auto* sub = caf::get_if<caf::settings>(&val)) {
      for (auto& [key, x] : *sub)
        if (auto err = check(category, key, x))
          return err;
    } else if (auto err = check("global", category, val)) {
      return err;
    }
  }
  return caf::none;
}

} // namespace

config::config() {
  opt_group{custom_options_, "troupe"}
    .add(name, "name", "this node's name; names its logger (default: program)")
    .add(log_level, "log-level",
         "trace, debug, info, warn, error, critical or off (default: info)")
    .add(log_file, "log-file", "append the log to this file, not to stderr")
    .add(shutdown_timeout, "shutdown-timeout",
         "after SIGINT/SIGTERM, time for actors to exit (default: 500ms)");
  // CAF's 'stealing' scheduler, but idle workers steal only on the first poll
  // of the aggressive and moderate phases (1000 > their 100 and 500 polls)
  // and then on every relaxed poll (10ms apart). Each steal walks the victim's
  // whole queue, so CAF's default (every 10th and 5th poll) turns quadratic
  // when one actor spawns or messages very many actors: 100k spawns from one
  // actor took 12.6 s with it and about 1 s with this; 'sharing' avoids that
  // too but made ping-pong 2.6x slower. Measured in bench/; override freely.
  set("scheduler.policy", caf::atom("stealing"));
  set("work-stealing.aggressive-steal-interval", size_t{1000});
  set("work-stealing.moderate-steal-interval", size_t{1000});
  troupe::add_error_category(*this, caf::atom("troupe"), [](uint8_t code) {
    return to_string(static_cast<errc>(code));
  });
  troupe::add_message_types(*this);
  detail::run_registrars(*this);
}

caf::error config::parse(int argc, char** argv) {
  if (argc > 0 && argv[0] != nullptr) {
    program_name_ = argv[0];
    if (auto pos = program_name_.rfind('/'); pos != std::string::npos)
      program_name_.erase(0, pos + 1);
  }
  // Normalise the command line for CAF: `--opt value` becomes `--opt=value`,
  // and each value is checked here so that the error can name the option.
  string_list args;
  std::string ini_path;
  bool explicit_ini = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      positional_.insert(positional_.end(), argv + i + 1, argv + argc);
      break;
    }
    if (arg == "-h" || arg == "-?" || arg == "--help") {
      cli_helptext_printed = true;
      help_requested_ = true;
      return caf::none;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      positional_.push_back(std::move(arg));
      continue;
    }
    const caf::config_option* opt = nullptr;
    std::string key;
    auto eq = std::string::npos;
    if (arg[1] != '-') {
      // Short option: `-w 7` or `-w7`; rewritten below to its long form.
      opt = find_short(custom_options_, arg[1]);
      if (opt == nullptr)
        return option_error(errc::unknown_option,
                            "unknown option '" + arg.substr(0, 2) + "'");
      key = cli_name(*opt).substr(2);
      if (arg.size() > 2) {
        arg = "--" + key + "=" + arg.substr(2);
        eq = key.size() + 2;
      } else {
        arg = "--" + key;
      }
    } else {
      eq = arg.find('=');
      key = arg.substr(2, eq == std::string::npos ? eq : eq - 2);
      if (key == "config") // troupe's name for CAF's --config-file
        key = "config-file";
      opt = custom_options_.cli_long_name_lookup(key);
      if (opt == nullptr)
        return option_error(errc::unknown_option,
                            "unknown option '--" + key + "'");
    }
    auto shown = key == "config-file" ? arg.substr(0, eq) : cli_name(*opt);
    if (opt->is_flag()) {
      if (eq != std::string::npos)
        return option_error(errc::invalid_option_value,
                            "option '" + cli_name(*opt)
                              + "' is a flag and takes no value");
      args.push_back(std::move(arg));
      continue;
    }
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return option_error(errc::invalid_option_value,
                          "option '" + shown + "' needs a value ("
                            + str(opt->type_name()) + ")");
    }
    if (auto parsed = opt->parse(value); !parsed)
      return option_error(errc::invalid_option_value,
                          "invalid value '" + value + "' for option '"
                            + cli_name(*opt) + "' (expected "
                            + str(opt->type_name()) + ")");
    if (key == "config-file") {
      ini_path = value;
      explicit_ini = true;
    }
    args.push_back("--" + key + "=" + value);
  }
  if (!positional_.empty() && positional_usage_.empty())
    return option_error(errc::unknown_option,
                        "unexpected argument '" + positional_.front() + "'");
  // The program's own file, never another program's: CAF's default
  // (`caf-application.ini`, shared by every program) is not read.
  if (!explicit_ini)
    ini_path = default_config_file();
  config_file_path = ini_path; // as --dump-config shows it
  std::ifstream ini_file;
  std::istringstream no_file;
  if (explicit_ini || (!ini_path.empty() && std::ifstream{ini_path}.good())) {
    if (auto err = check_ini(custom_options_, ini_path))
      return err;
    ini_file.open(ini_path);
    if (!ini_file)
      return option_error(errc::cannot_open_file,
                          "cannot open config file '" + ini_path + "'");
  }
  std::istream& ini
    = ini_file.is_open() ? static_cast<std::istream&>(ini_file) : no_file;
  if (auto err = caf::actor_system_config::parse(std::move(args), ini))
    return option_error(errc::invalid_option_value,
                        "invalid configuration: " + to_string(err));
  if (cli_helptext_printed) // --long-help or --dump-config, printed by CAF
    return caf::none;
  if (name.empty())
    name = program_name_.empty() ? "troupe" : program_name_;
  return validate();
}

std::string config::default_config_file() const {
  if (program_name_.empty())
    return {};
  auto file = program_name_;
  // `troupe request` runs as the program "troupe request".
  std::replace_if(
    file.begin(), file.end(), [](char c) { return c == ' ' || c == '\t'; },
    '-');
  return file + ".ini";
}

caf::error config::validate() const {
  if (std::none_of(std::begin(log_levels), std::end(log_levels),
                   [&](const char* x) { return log_level == x; }))
    return option_error(errc::invalid_option_value,
                        "invalid value '" + log_level
                          + "' for option '--troupe.log-level' (expected one "
                            "of trace, debug, info, warn, error, critical, "
                            "off)");
  if (shutdown_timeout <= caf::timespan{0})
    return option_error(errc::invalid_option_value,
                        "option '--troupe.shutdown-timeout' must be positive");
  if (!log_file.empty() && !std::ofstream{log_file, std::ios::app})
    return option_error(errc::cannot_open_file,
                        "cannot open log file '" + log_file
                          + "' (option '--troupe.log-file')");
  return caf::none;
}

std::string config::help_text() const {
  auto prog = program_name_.empty() ? std::string{"program"} : program_name_;
  std::vector<std::pair<std::string, std::string>> own;
  std::vector<std::pair<std::string, std::string>> troupe_opts;
  for (auto& opt : custom_options_) {
    std::string lhs;
    for (auto c : opt.short_names())
      lhs += std::string{'-', c} + ", ";
    lhs += cli_name(opt);
    if (!opt.is_flag())
      lhs += " <" + str(opt.type_name()) + ">";
    auto entry = std::make_pair(std::move(lhs), str(opt.description()));
    if (opt.category() == "global" && !is_builtin_global(opt.long_name()))
      own.push_back(std::move(entry));
    else if (opt.category() == "troupe")
      troupe_opts.push_back(std::move(entry));
  }
  size_t width = 28;
  for (auto* xs : {&own, &troupe_opts})
    for (auto& x : *xs)
      width = std::max(width, x.first.size() + 4);
  std::ostringstream out;
  auto print = [&](const std::string& lhs, const std::string& rhs) {
    out << "  " << lhs << std::string(width - lhs.size() - 2, ' ') << rhs
        << '\n';
  };
  out << "Usage: " << prog << " [OPTIONS]";
  if (!positional_usage_.empty())
    out << ' ' << positional_usage_;
  out << '\n';
  if (!description_.empty())
    out << description_ << '\n';
  if (!own.empty()) {
    out << "\nOptions:\n";
    for (auto& [lhs, rhs] : own)
      print(lhs, rhs);
  }
  out << "\nNode options:\n";
  for (auto& [lhs, rhs] : troupe_opts)
    print(lhs, rhs);
  out << "\nGeneral:\n";
  print("-h, --help", "print this text and exit");
  print("--long-help", "print every option, CAF's included, and exit");
  print("--dump-config", "print the configuration and exit");
  auto own_file = default_config_file();
  print("--config <file>",
        "read options from this INI file (default: "
          + (own_file.empty() ? std::string{"none"} : "./" + own_file) + ")");
  out << "\nExit codes:\n";
  print("0", "the work is complete (or --help)");
  print("1", "the work failed or is incomplete; the message says why");
  print("2", "a bad option or configuration; the message names it");
  print("130, 143", "stopped by SIGINT, SIGTERM before the work was complete");
  out << "\nLong options take their value as '--opt value' or '--opt=value'."
      << '\n';
  return out.str();
}

} // namespace troupe
