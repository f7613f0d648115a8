#include "troupe/runtime/config.hpp"

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "troupe/runtime/errc.hpp"

namespace troupe {

namespace {

struct test_config : config {
  int32_t items = 5;
  std::string label = "none";
  test_config() {
    opt_group{custom_options_, "global"}
      .add(items, "items,i", "number of items")
      .add(label, "label", "a label")
      .add<bool>("verbose", "be chatty");
  }
};

// Parses `args` (without the program name) into `cfg` as the program
// `argv0`.
caf::error parse_as(config& cfg, const std::string& argv0,
                    std::vector<std::string> args) {
  args.insert(args.begin(), argv0);
  std::vector<char*> argv;
  for (auto& x : args)
    argv.push_back(x.data());
  return cfg.parse(static_cast<int>(argv.size()), argv.data());
}

// Parses `args` (without the program name) into `cfg` as /usr/bin/prog.
caf::error parse(config& cfg, std::vector<std::string> args) {
  return parse_as(cfg, "/usr/bin/prog", std::move(args));
}

// Returns the human-readable context of an error made by `config::parse`.
std::string what(const caf::error& err) {
  if (err.context().size() == 1 && err.context().match_element<std::string>(0))
    return err.context().get_as<std::string>(0);
  return to_string(err);
}

// A temporary INI file, removed at the end of the test.
struct ini_file {
  std::string path;
  explicit ini_file(const std::string& text)
      : ini_file("troupe_config_test_" + std::to_string(counter++) + ".ini",
                 text) {}
  ini_file(std::string file, const std::string& text) : path(std::move(file)) {
    std::ofstream{path} << text;
  }
  ~ini_file() {
    std::remove(path.c_str());
  }
  static inline int counter = 0;
};

} // namespace

TEST_CASE("long options take their value with a space or with '='",
          "[runtime][config]") {
  test_config cfg;
  SECTION("space") {
    REQUIRE_FALSE(parse(cfg, {"--items", "7", "--troupe.log-level", "debug"}));
    CHECK(cfg.items == 7);
    CHECK(cfg.log_level == "debug");
  }
  SECTION("equals sign") {
    REQUIRE_FALSE(parse(cfg, {"--items=8", "--troupe.name=n1"}));
    CHECK(cfg.items == 8);
    CHECK(cfg.name == "n1");
  }
  SECTION("short options, with or without a space") {
    REQUIRE_FALSE(parse(cfg, {"-i", "4"}));
    CHECK(cfg.items == 4);
    test_config other;
    REQUIRE_FALSE(parse(other, {"-i9"}));
    CHECK(other.items == 9);
  }
  SECTION("flags and strings with spaces") {
    REQUIRE_FALSE(parse(cfg, {"--verbose", "--label", "two words"}));
    CHECK(caf::get_or(cfg, "verbose", false));
    CHECK(cfg.label == "two words");
  }
}

TEST_CASE("the node name defaults to the program name", "[runtime][config]") {
  test_config cfg;
  REQUIRE_FALSE(parse(cfg, {}));
  CHECK(cfg.name == "prog");
  CHECK(cfg.log_level == "info");
}

TEST_CASE("bad command lines are errors that name the option",
          "[runtime][config]") {
  test_config cfg;
  SECTION("unknown option") {
    auto err = parse(cfg, {"--itmes=3"});
    CHECK(err == errc::unknown_option);
    CHECK(what(err) == "unknown option '--itmes'");
  }
  SECTION("unknown short option") {
    auto err = parse(cfg, {"-x"});
    CHECK(err == errc::unknown_option);
    CHECK(what(err) == "unknown option '-x'");
  }
  SECTION("short option with a bad value") {
    auto err = parse(cfg, {"-i", "x"});
    CHECK(err == errc::invalid_option_value);
    CHECK(what(err)
          == "invalid value 'x' for option '--items' (expected int32)");
  }
  SECTION("value of the wrong type") {
    auto err = parse(cfg, {"--items", "many"});
    CHECK(err == errc::invalid_option_value);
    CHECK(what(err)
          == "invalid value 'many' for option '--items' (expected int32)");
  }
  SECTION("value out of range") {
    auto err = parse(cfg, {"--items=99999999999"});
    CHECK(err == errc::invalid_option_value);
    CHECK(what(err).find("'--items'") != std::string::npos);
  }
  SECTION("missing value") {
    auto err = parse(cfg, {"--items"});
    CHECK(err == errc::invalid_option_value);
    CHECK(what(err) == "option '--items' needs a value (int32)");
  }
  SECTION("a flag given a value") {
    auto err = parse(cfg, {"--verbose=false"});
    CHECK(err == errc::invalid_option_value);
    CHECK(what(err) == "option '--verbose' is a flag and takes no value");
  }
  SECTION("unknown log level") {
    auto err = parse(cfg, {"--troupe.log-level", "loud"});
    CHECK(err == errc::invalid_option_value);
    CHECK(what(err).find("'--troupe.log-level'") != std::string::npos);
  }
  SECTION("a positional argument the program does not take") {
    auto err = parse(cfg, {"stray"});
    CHECK(err == errc::unknown_option);
    CHECK(what(err) == "unexpected argument 'stray'");
  }
  SECTION("a log file that cannot be opened") {
    auto err = parse(cfg, {"--troupe.log-file=/nonexistent-dir/x.log"});
    CHECK(err == errc::cannot_open_file);
  }
}

TEST_CASE("programs that declare positional arguments receive them in order",
          "[runtime][config]") {
  test_config cfg;
  cfg.positional("HOST...");
  REQUIRE_FALSE(parse(cfg, {"a", "--items", "2", "b", "--", "--c"}));
  CHECK(cfg.positional_args() == std::vector<std::string>{"a", "b", "--c"});
  CHECK(cfg.items == 2);
}

TEST_CASE("the INI file is read and checked", "[runtime][config]") {
  test_config cfg;
  SECTION("values are read, the command line wins") {
    ini_file ini{"[global]\nitems=3\nlabel=\"x\"\n[troupe]\nname=\"ini\"\n"};
    REQUIRE_FALSE(parse(cfg, {"--config-file", ini.path, "--label=cli"}));
    CHECK(cfg.items == 3);
    CHECK(cfg.label == "cli");
    CHECK(cfg.name == "ini");
  }
  SECTION("an unknown key is an error, not silently ignored") {
    ini_file ini{"[troupe]\nlog-levl=\"debug\"\n"};
    auto err = parse(cfg, {"--config-file=" + ini.path});
    CHECK(err == errc::unknown_option);
    CHECK(what(err).find("'troupe.log-levl'") != std::string::npos);
  }
  SECTION("a value of the wrong type is an error, not silently ignored") {
    ini_file ini{"[global]\nitems=\"many\"\n"};
    auto err = parse(cfg, {"--config-file=" + ini.path});
    CHECK(err == errc::invalid_option_value);
    CHECK(what(err).find("'items'") != std::string::npos);
  }
  SECTION("a syntax error is reported with the file") {
    ini_file ini{"[troupe]\nname=unquoted\n"};
    auto err = parse(cfg, {"--config-file=" + ini.path});
    CHECK(err == errc::invalid_option_value);
    CHECK(what(err).find(ini.path) != std::string::npos);
  }
  SECTION("a missing explicit file is an error") {
    auto err = parse(cfg, {"--config-file=/nonexistent.ini"});
    CHECK(err == errc::cannot_open_file);
  }
}

TEST_CASE("each program reads its own INI file - never caf-application.ini",
          "[runtime][config]") {
  // A program name of this test case's own: ctest may run other cases in
  // the same directory at the same time.
  const std::string prog = "troupe_config_test_own_file";
  const std::string argv0 = "/usr/local/bin/" + prog;
  test_config cfg;
  SECTION("the default file is <program>.ini in the working directory") {
    CHECK(test_config{}.default_config_file().empty()); // before parse
    ini_file own{prog + ".ini", "[global]\nitems=3\n[troupe]\nname=\"own\"\n"};
    REQUIRE_FALSE(parse_as(cfg, argv0, {}));
    CHECK(cfg.default_config_file() == prog + ".ini");
    CHECK(cfg.items == 3);
    CHECK(cfg.name == "own");
  }
  SECTION("caf-application.ini and other programs' files are not read") {
    // Keys another program takes (task_master's 'tasks') and a value this
    // one would take: none of them matters here.
    ini_file shared{"caf-application.ini", "[global]\ntasks=5\nitems=9\n"};
    ini_file other{"counter.ini", "[global]\nitems=8\n"};
    REQUIRE_FALSE(parse_as(cfg, argv0, {}));
    CHECK(cfg.items == 5);
  }
  SECTION("a bad key in the program's own file is reported with the file") {
    ini_file own{prog + ".ini", "[global]\ntasks=5\n"};
    auto err = parse_as(cfg, argv0, {});
    CHECK(err == errc::unknown_option);
    CHECK(what(err)
          == "unknown option 'tasks' in config file '" + prog + ".ini'");
  }
  SECTION("--config FILE reads FILE instead, and reports its bad keys") {
    ini_file own{prog + ".ini", "[global]\nitems=3\nlabel=\"own\"\n"};
    ini_file picked{"[global]\nitems=4\n"};
    REQUIRE_FALSE(parse_as(cfg, argv0, {"--config", picked.path}));
    CHECK(cfg.items == 4);
    CHECK(cfg.label == "none"); // the default file was not read
    test_config eq;
    REQUIRE_FALSE(parse_as(eq, argv0, {"--config=" + picked.path}));
    CHECK(eq.items == 4);
    ini_file typo{"[global]\nitmes=4\n"};
    test_config unknown;
    auto err = parse_as(unknown, argv0, {"--config", typo.path});
    CHECK(err == errc::unknown_option);
    CHECK(what(err)
          == "unknown option 'itmes' in config file '" + typo.path + "'");
    ini_file bad{"[troupe]\nlog-level=\"loud\"\n"};
    test_config other;
    err = parse_as(other, argv0, {"--config", bad.path});
    CHECK(err == errc::invalid_option_value);
    CHECK(what(err).find("'--troupe.log-level'") != std::string::npos);
    test_config missing;
    err = parse_as(missing, argv0, {"--config", "/nonexistent.ini"});
    CHECK(err == errc::cannot_open_file);
    CHECK(what(err) == "cannot open config file '/nonexistent.ini'");
    test_config no_value;
    err = parse_as(no_value, argv0, {"--config"});
    CHECK(err == errc::invalid_option_value);
    CHECK(what(err) == "option '--config' needs a value (string)");
  }
  SECTION("a subcommand's file has its name: 'troupe request' reads "
          "troupe-request.ini") {
    REQUIRE_FALSE(parse_as(cfg, "troupe request", {}));
    CHECK(cfg.default_config_file() == "troupe-request.ini");
  }
}

TEST_CASE("--help lists the program's and troupe's options - one line each",
          "[runtime][config]") {
  test_config cfg;
  cfg.description("Does things.");
  REQUIRE_FALSE(parse(cfg, {"--help"}));
  CHECK(cfg.help_printed());
  CHECK(cfg.help_requested());
  auto text = cfg.help_text();
  CHECK(text.rfind("Usage: prog [OPTIONS]\nDoes things.\n", 0) == 0);
  for (auto opt :
       {"-i, --items <int32>", "--verbose ", "--troupe.name <string>",
        "--troupe.log-level <string>", "--troupe.log-file <string>",
        "--troupe.shutdown-timeout <timespan>", "--long-help",
        "--config <file>", "INI file (default: ./prog.ini)\n"}) {
    INFO(opt);
    CHECK(text.find(opt) != std::string::npos);
  }
  // CAF's own groups stay out of the short help.
  CHECK(text.find("scheduler.") == std::string::npos);
}

TEST_CASE("troupe's scheduler defaults can be overridden",
          "[runtime][config]") {
  test_config cfg;
  REQUIRE_FALSE(parse(cfg, {}));
  CHECK(caf::get_or(cfg, "scheduler.policy", caf::atom(""))
        == caf::atom("stealing"));
  CHECK(caf::get_or(cfg, "work-stealing.aggressive-steal-interval", size_t{0})
        == 1000);
  test_config other;
  REQUIRE_FALSE(parse(other, {"--scheduler.policy", "'sharing'",
                              "--work-stealing.aggressive-steal-interval=10"}));
  CHECK(caf::get_or(other, "scheduler.policy", caf::atom(""))
        == caf::atom("sharing"));
  CHECK(caf::get_or(other, "work-stealing.aggressive-steal-interval", size_t{0})
        == 10);
}

} // namespace troupe
