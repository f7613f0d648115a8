#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

namespace troupe {

/// Errors raised by the runtime, and the codes every capability shares
/// (`closed`, `timeout`, `type_mismatch`). Values start at 1; 0 means "no
/// error". Each capability has its own enum beside it (`troupe::bus::errc`,
/// `troupe::queue::errc`, `troupe::supervision::errc`). `troupe::config`
/// registers the categories with CAF, and all of them render alike:
/// `sys.render(err)` prints `troupe_error(<name>, <context>)`.
enum class errc : uint8_t {
  /// A command-line option or configuration key is not known to the program.
  /// Context: the option as written.
  unknown_option = 1,
  /// An option was given a value of the wrong type or out of range, or no
  /// value at all. Context: the option and the value.
  invalid_option_value,
  /// A file named in the configuration could not be opened.
  /// Context: the path and the reason.
  cannot_open_file,
  /// The node is shutting down and did not start the requested work.
  shutting_down,
  /// The queue, pool, bus or stream was closed: no item will arrive any
  /// more, and no work is taken.
  closed,
  /// Two nodes registered different message types. Context: the types that
  /// only one side knows, by node.
  registry_mismatch,
  /// A wait ended before what it waited for happened (e.g. a pool job's
  /// result). Context: what was still missing.
  timeout,
  /// TLS is misconfigured: a key, certificate or CA file is missing, does
  /// not parse, or does not fit the others. Context: the file and the cause.
  tls_config,
  /// Plain TCP was refused: the address is not loopback and neither TLS nor
  /// `--insecure` was given. Context: the address.
  insecure_refused,
  /// A peer could not be reached or did not complete the handshake for a
  /// reason that may pass (connection refused, a timeout, a reset).
  /// Context: the address and the cause.
  connect_failed,
  /// A value is not of the type expected: a bus payload read as another
  /// type, a worker whose task or result type differs from its queue's.
  /// Context: both types.
  type_mismatch,
  /// A job or task threw: a pool job, or a queue task on its worker.
  /// Context: the exception's message.
  job_failed,
  /// A peer refused a connection for now: too many connections in handshake
  /// (or no file descriptors) at its end. Retrying later may succeed.
  /// Context: the peer's address and what it said.
  busy,
  /// A peer refused this node for a reason that retrying will not cure
  /// until one side's configuration changes: another cluster key or cookie,
  /// a certificate it does not accept, TLS on one side only, another troupe
  /// protocol version, not a troupe node. Context: the address and the cause.
  refused,
};

/// Returns the name of `x`, e.g. `"unknown_option"`.
std::string to_string(errc x);

/// Returns the text to show a user for `err`: its message if it carries one
/// (troupe's errors do), otherwise CAF's rendering of it; "no error" for
/// an empty one.
std::string error_text(const caf::error& err);

/// Registers the error enum of `category` with `cfg`, so that CAF renders
/// its errors as every troupe error renders: `troupe_error(<name>,
/// <context>)`, with `name(code)` as the name.
void add_error_category(caf::actor_system_config& cfg, caf::atom_value category,
                        std::string (*name)(uint8_t code));

namespace detail {

/// Returns `troupe_error(<name>)`, or `troupe_error(<name>, <context>)`: how
/// every troupe error category renders. @private
std::string render_error(const std::string& name, const caf::message& ctx);

} // namespace detail

} // namespace troupe

CAF_ERROR_CODE_ENUM(troupe::errc, "troupe")
