#pragma once

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "troupe/runtime/config.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/node.hpp"

namespace troupe {

namespace detail {

/// Parses `cfg`; prints help or the error. Returns the exit code if the
/// program should stop now (0 after help, 2 after a bad option).
std::optional<int> parse_or_exit_code(config& cfg, int argc, char** argv);

/// Prints `err`, found by `Config::prepare`; returns 2.
int report_config_error(const config& cfg, const caf::error& err);

template <class T, class = void>
struct has_prepare : std::false_type {};

template <class T>
struct has_prepare<T, std::void_t<decltype(std::declval<T&>().prepare())>>
    : std::true_type {};

/// Prints `what` as a start-up error of the program in `cfg`; returns 1.
int report_startup_failure(const config& cfg, const char* what);

} // namespace detail

/// The body of a troupe program's `main`: parses the command line and the
/// program's own INI file (`./<program>.ini`, or `--config FILE`; see
/// `config::parse`) into a `Config`, starts a `node` that stops on
/// SIGINT/SIGTERM, and calls `fn(node&, const Config&)`, which returns the
/// exit code. If `Config` has a member `caf::error prepare()`, it runs after
/// parsing and before the node starts (e.g. to check TLS files, which CAF
/// would abort on); its error is printed and the program exits 2.
///
/// When `fn` returns, `run` returns as soon as no actor has work left. It
/// waits for every actor to exit, and CAF ends an actor when it quits (or is
/// told to: `node::stop`, a signal) and also when nothing can reach it any
/// more: no handle to it is left and nothing is pending for it (no message
/// in its mailbox, no timer, no request awaiting an answer). So an actor
/// still working keeps `run` waiting, and one that only waits for messages
/// nobody can send ends. A supervisor, pool, task queue or bus is the
/// program's for as long as it holds a handle to it (the `caf::actor` of a
/// supervisor or a stable child handle, the `pool`, `task_queue` or `bus`
/// object): once the last one is gone, it stops, and its actors with it.
/// Nothing troupe starts on its own (timers, published ports, dials) keeps
/// the process alive. A program that serves until it is stopped waits in
/// `fn`, e.g. with `n.wait_for_stop()`.
///
/// Exit codes: `fn`'s result, which is 0 only if the program's work is
/// complete; if SIGINT or SIGTERM stopped the node and `fn` did not return
/// 0, 128 + the signal's number (130, 143) as shells report a program the
/// signal ended; 0 after `--help`; 2 for an unknown option or a bad value
/// (the message names it).
///
/// ```cpp
/// int main(int argc, char** argv) {
///   return troupe::run<my_config>(argc, argv, [](troupe::node& n,
///                                                const my_config& cfg) {
///     n.spawn(hello, cfg.items);
///     return 0;
///   });
/// }
/// ```
template <class Config, class F>
int run(int argc, char** argv, F fn) {
  Config cfg;
  if (auto code = detail::parse_or_exit_code(cfg, argc, argv))
    return *code;
  if constexpr (detail::has_prepare<Config>::value) {
    if (auto err = cfg.prepare())
      return detail::report_config_error(cfg, err);
  }
  std::optional<node> n;
  try {
    n.emplace(cfg, node::signals::stop);
  } catch (const std::exception& e) {
    return detail::report_startup_failure(cfg, e.what());
  }
  int rc = fn(*n, static_cast<const Config&>(cfg));
  n->await_actors(); // a signal during this wait still stops the node
  int signo = n->stop_signal();
  n.reset();
  return signo != 0 && rc != 0 ? 128 + signo : rc;
}

} // namespace troupe
