// troupe: the command-line tool. Each subcommand is one row in `commands`
// below: its name, its arguments, a one-line summary and the function that
// runs it. Exit codes: 0 success, 1 the command failed, 2 bad usage.
//
//   $ troupe keygen cluster.key
//   wrote new cluster key to cluster.key (mode 0600); copy it to every node
//   and pass --authkey-file cluster.key

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "troupe/runtime/security.hpp"

#include "troupe_bus.hpp"

namespace {

using args_list = std::vector<std::string>;

/// One subcommand of `troupe`.
struct command {
  /// Its name on the command line.
  const char* name;
  /// Its arguments, as shown in the usage line.
  const char* args;
  /// What it does, in one line for `troupe help`.
  const char* summary;
  /// Further help for `troupe help <name>`, or an empty string.
  const char* details;
  /// Runs it with the arguments after its name; returns the exit code.
  int (*run)(const command& self, const args_list& args);
};

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;

int usage_error(const command& cmd, const std::string& what) {
  std::fprintf(stderr, "troupe %s: %s\nusage: troupe %s %s\n", cmd.name,
               what.c_str(), cmd.name, cmd.args);
  return exit_usage;
}

bool is_help_flag(const std::string& arg) {
  return arg == "-h" || arg == "--help";
}

void print_command_help(const command& cmd) {
  std::printf("usage: troupe %s %s\n\n%s\n", cmd.name, cmd.args, cmd.summary);
  if (std::strlen(cmd.details) > 0)
    std::printf("\n%s", cmd.details);
}

// -- subcommands --------------------------------------------------------------

int run_keygen(const command& self, const args_list& args) {
  if (args.size() == 1 && is_help_flag(args[0])) {
    print_command_help(self);
    return exit_ok;
  }
  if (args.empty())
    return usage_error(self, "missing FILE");
  if (args.size() > 1)
    return usage_error(self, "too many arguments");
  const auto& path = args[0];
  if (path.size() > 1 && path[0] == '-')
    return usage_error(self, "unknown option " + path);
  if (auto err = troupe::security::write_key_file(path)) {
    std::fprintf(stderr, "troupe keygen: %s\n",
                 troupe::error_text(err).c_str());
    return exit_failed;
  }
  std::printf("wrote new cluster key to %s (mode 0600); copy it to every node "
              "and pass --authkey-file %s\n",
              path.c_str(), path.c_str());
  return exit_ok;
}

int run_help(const command& self, const args_list& args);

/// Runs one of the bus subcommands (troupe_bus.cpp), which parse their own
/// options.
template <int (*F)(const std::string&, const args_list&)>
int run_bus(const command& self, const args_list& args) {
  return F(std::string{"troupe "} + self.name, args);
}

const command commands[] = {
  {"keygen", "FILE", "Write a new random cluster key to FILE (mode 0600).",
   "Nodes that hold the same key trust each other: each derives the same\n"
   "cluster CA from it and issues itself a TLS certificate signed by that CA.\n"
   "Copy FILE to every node over a secure channel and start each with\n"
   "--authkey-file FILE. Refuses to overwrite an existing FILE.\n",
   run_keygen},
  {"node", "--listen HOST:PORT [--connect HOST:PORT,...]",
   "Run a standalone bus node (like nats-server).",
   "Prints 'listening on HOST:PORT' first (port 0: the OS chooses). Nodes\n"
   "linked with --connect form one bus: a message crosses to a node only if\n"
   "something there subscribed to it. Links must form a tree (no loops);\n"
   "a lost link is redialled. Off loopback, links are mutual TLS: give\n"
   "every node the same --authkey-file. Run 'troupe node --help' for all\n"
   "options.\n",
   run_bus<troupe::tools::bus_node>},
  {"sub", "PATTERN --connect HOST:PORT [--queue GROUP]",
   "Print 'SUBJECT: PAYLOAD' for each message matching PATTERN.",
   "PATTERN is a subject with wildcards: * for one token, > for the rest\n"
   "(orders.*.created, orders.>). With --queue GROUP, the subscribers of a\n"
   "group share the messages: each goes to one of them. --count N exits\n"
   "after N messages.\n",
   run_bus<troupe::tools::bus_sub>},
  {"pub", "SUBJECT TEXT --connect HOST:PORT", "Publish TEXT on SUBJECT.",
   "--count N publishes it N times; --wait-for-subscriber 5s first waits\n"
   "until somebody subscribed to SUBJECT (exit 1 if nobody did).\n",
   run_bus<troupe::tools::bus_pub>},
  {"reply", "SUBJECT --connect HOST:PORT [--queue GROUP]",
   "Answer each request on SUBJECT by echoing it.", "",
   run_bus<troupe::tools::bus_reply>},
  {"request", "SUBJECT TEXT --connect HOST:PORT [--timeout 1s]",
   "Send a request and print the reply, or the error.",
   "Exits 1 with 'no responders' at once if nobody listens on SUBJECT, or\n"
   "with a timeout if no reply came in time.\n",
   run_bus<troupe::tools::bus_request>},
  {"help", "[COMMAND]", "Show this help, or the help of COMMAND.", "",
   run_help},
};

const command* find_command(const std::string& name) {
  for (const auto& cmd : commands)
    if (name == cmd.name)
      return &cmd;
  return nullptr;
}

void print_overview(std::FILE* out) {
  std::fprintf(out, "usage: troupe COMMAND [ARGS...]\n\ncommands:\n");
  for (const auto& cmd : commands) {
    auto synopsis = std::string{cmd.name} + " " + cmd.args;
    if (synopsis.size() > 18)
      std::fprintf(out, "  %s\n  %-18s %s\n", synopsis.c_str(), "",
                   cmd.summary);
    else
      std::fprintf(out, "  %-18s %s\n", synopsis.c_str(), cmd.summary);
  }
  std::fprintf(out, "\nRun 'troupe help COMMAND' for more about a command.\n");
}

int run_help(const command& self, const args_list& args) {
  if (args.empty()) {
    print_overview(stdout);
    return exit_ok;
  }
  if (args.size() > 1)
    return usage_error(self, "too many arguments");
  if (const auto* cmd = find_command(args[0])) {
    print_command_help(*cmd);
    return exit_ok;
  }
  std::fprintf(stderr, "troupe help: unknown command '%s'\n\n",
               args[0].c_str());
  print_overview(stderr);
  return exit_usage;
}

} // namespace

int main(int argc, char** argv) {
  args_list args(argv + 1, argv + argc);
  if (args.empty()) {
    print_overview(stderr);
    return exit_usage;
  }
  if (is_help_flag(args[0])) {
    print_overview(stdout);
    return exit_ok;
  }
  const auto* cmd = find_command(args[0]);
  if (cmd == nullptr) {
    std::fprintf(stderr, "troupe: unknown command '%s'\n\n", args[0].c_str());
    print_overview(stderr);
    return exit_usage;
  }
  return cmd->run(*cmd, args_list(args.begin() + 1, args.end()));
}
