#pragma once

// The bus subcommands of `troupe` (troupe_bus.cpp): each takes the program
// name to show ("troupe sub") and the arguments after the subcommand, and
// returns the exit code (0 done, 1 failed, 2 bad usage).

#include <string>
#include <vector>

namespace troupe::tools {

using args_list = std::vector<std::string>;

int bus_node(const std::string& prog, const args_list& args);
int bus_sub(const std::string& prog, const args_list& args);
int bus_pub(const std::string& prog, const args_list& args);
int bus_reply(const std::string& prog, const args_list& args);
int bus_request(const std::string& prog, const args_list& args);

} // namespace troupe::tools
