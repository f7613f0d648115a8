#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

namespace troupe {

/// Errors raised by troupe. Values start at 1; 0 means "no error". The
/// category is registered with CAF by `troupe::config`, so `sys.render(err)`
/// prints `troupe_error(<name>, <context>)`.
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
  /// The queue or stream was closed: no item will arrive any more.
  closed,
  /// Two nodes registered different message types. Context: the types that
  /// only one side knows, by node.
  registry_mismatch,
  /// A supervisor restarted its children more often than its intensity
  /// allows and gave up. Context: which child failed, how often, and why.
  restart_intensity,
  /// A supervisor has no running child of that id. Context: the id.
  no_such_child,
  /// A wait ended before what it waited for happened (e.g. a pool job's
  /// result). Context: what was still missing.
  timeout,
  /// The pool was closed and takes no more jobs.
  pool_closed,
  /// `join` was called on a pool that was not closed first.
  pool_running,
  /// A job run by a pool threw. Context: the exception's message.
  job_failed,
  /// TLS is misconfigured: a key, certificate or CA file is missing, does
  /// not parse, or does not fit the others. Context: the file and the cause.
  tls_config,
  /// Plain TCP was refused: the address is not loopback and neither TLS nor
  /// `--insecure` was given. Context: the address.
  insecure_refused,
  /// A peer could not be reached or did not complete the handshake (e.g. a
  /// wrong cluster key). Context: the address and the cause.
  connect_failed,
  /// The master serves no queue of that name. Context: the name.
  no_such_queue,
  /// A worker's task or result type differs from the queue's. Context: both.
  type_mismatch,
  /// A stored queue cannot be used: not a troupe store, made for another
  /// queue, or SQLite failed. Context: the path and the cause.
  store_failed,
  /// A bus subject or subscription pattern is malformed. Context: the subject
  /// and what is wrong with it.
  invalid_subject,
  /// A bus request found no subscriber for its subject. Context: the subject.
  no_responders,
};

/// Returns the name of `x`, e.g. `"unknown_option"`.
std::string to_string(errc x);

/// Returns the text to show a user for `err`: its message if it carries one
/// (troupe's errors do), otherwise CAF's rendering of it.
std::string error_text(const caf::error& err);

} // namespace troupe

CAF_ERROR_CODE_ENUM(troupe::errc, "troupe")
