#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/timespan.hpp>

#include "troupe/runtime/fwd.hpp"

namespace troupe {

/// How a program reaches a peer and reaches it again after a loss: the bound
/// of one attempt (`dial`) and the delays between attempts (`backoff`). The
/// options of each user hold one and set its defaults. A plain value, not
/// synchronised.
struct reconnect_options {
  /// Bound of one connect attempt: the TCP probe, CAF's (or TLS's) handshake,
  /// and what the user asks the peer right after it (a join, a hello).
  caf::timespan connect_timeout = std::chrono::seconds{5};
  /// The delay before the first retry, and after a reset.
  caf::timespan initial_backoff = std::chrono::milliseconds{100};
  /// Delays double after each failure up to this.
  caf::timespan max_backoff = std::chrono::seconds{2};
};

/// The delays between connect attempts: `initial_backoff` first, doubling
/// after each failure up to `max_backoff`, and back to `initial_backoff`
/// after a `reset` (a success). Not thread-safe: one per actor's state.
class backoff {
public:
  backoff() noexcept : backoff(reconnect_options{}) {}

  explicit backoff(const reconnect_options& opts) noexcept
      : initial_(opts.initial_backoff), max_(opts.max_backoff),
        current_(opts.initial_backoff) {}

  /// Returns the delay to wait now and doubles the one after (up to the
  /// maximum).
  caf::timespan next() noexcept;

  /// Returns the delay that `next` would return, without changing it.
  caf::timespan current() const noexcept {
    return current_;
  }

  /// Starts over at the initial delay.
  void reset() noexcept {
    current_ = initial_;
  }

private:
  caf::timespan initial_;
  caf::timespan max_;
  caf::timespan current_;
};

/// `(dial_ok_atom, caf::actor remote)`: the attempt reached the peer and got
/// the actor it publishes at that port.
using dial_ok_atom = caf::atom_constant<caf::atom("dialok")>;

/// `(dial_empty_atom)`: the attempt reached a CAF node that publishes no
/// actor at that port.
using dial_empty_atom = caf::atom_constant<caf::atom("dialempty")>;

/// `(dial_failed_atom, caf::error why)`: the attempt failed; its text
/// (`error_text(why)`) says where and why, for the user: "cannot reach
/// HOST:PORT: connection refused", "HOST:PORT: TLS handshake refused: ...",
/// etc. Its code says whether trying again may help:
/// - `errc::connect_failed` (refused, unreachable, a timeout, a reset) and
///   `errc::busy` (the peer has too many connections in handshake): they may
///   pass;
/// - `errc::refused` (the peer turned this node away: another cluster key or
///   cookie, a certificate it does not accept, TLS on one side only, another
///   protocol version, not a troupe node), `errc::tls_config` and
///   `errc::insecure_refused` (this node's own configuration): they stay
///   until a configuration changes.
using dial_failed_atom = caf::atom_constant<caf::atom("dialfailed")>;

/// Makes one connect attempt to `host:port` and reports its outcome to
/// `reply_to` as exactly one of `(dial_ok_atom, caf::actor)`,
/// `(dial_empty_atom)` or `(dial_failed_atom, caf::error)`; returns at once.
///
/// The attempt runs in a short-lived detached actor, because its TCP connect
/// blocks its thread (bounded by `timeout`; CAF's own connect blocks for
/// minutes on a silent host and holds up every other connect of the process
/// meanwhile). It goes through the gate (the README's Security section):
/// preamble, TLS if `cfg` has a key, then CAF's handshake, all within
/// `timeout`. A peer that answers "busy" is asked again with growing pauses
/// until `timeout` runs out. A failure says which step failed and, for a
/// timeout, that `timeout` (`--connect-timeout`) ran out. If the program did
/// not call `cfg.secure()`, this does (a key always means TLS); plain TCP to
/// a host that is not loopback fails with `errc::insecure_refused` unless
/// `--insecure`. `cfg` must outlive the attempt. Thread-safe.
void dial(caf::actor_system& sys, const net_config& cfg, std::string host,
          uint16_t port, caf::timespan timeout, caf::actor reply_to);

} // namespace troupe
