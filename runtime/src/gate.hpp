#pragma once

// Private: the gate in front of CAF's BASP. Every port that `troupe::listen`
// opens and every connection that `troupe::dial` makes goes through it, plain
// or TLS. CAF 0.17 trusts the first bytes of a connection: one 32-byte BASP
// header makes it allocate up to 4 GiB, an idle TLS connection spins a core,
// a silent one is never closed, and running out of descriptors spins the
// accept loop. The gate is troupe's own doorman (acceptor) and scribe
// (connection) on CAF's multiplexer; CAF's BASP broker drives them as it
// drives its own, so a message costs no extra copy and no extra thread:
//
// 1. Preamble: before anything else, the client sends 8 bytes
//    ("TROUPE", version, 0 = plain or 1 = TLS) and the server answers 8
//    ("TROUPE", version, status): ok, busy, TLS required, plain only, or
//    unknown version. Bytes that are not a troupe preamble close the
//    connection at once. The server's BASP handshake (its node id and what
//    it publishes) is held back until the peer authenticated.
// 2. Plain TCP: the cookie. The client's preamble carries a 16-byte nonce;
//    the server's answer adds its own nonce and HMAC-SHA256(cookie,
//    "troupe-server", both nonces); the client answers HMAC(cookie,
//    "troupe-client", both nonces) and gets a 1-byte verdict. Only processes
//    that can read the same cookie file get further (Erlang's model); CAF's
//    deserializer trusts lengths inside messages (a 4 GiB byte buffer from a
//    few bytes), so nobody else may reach it.
// 3. TLS (when the node has a key or certificates): after the preamble,
//    mutual TLS 1.3 with one OpenSSL context per node, driven by the socket's
//    readiness (no busy loop while a peer is silent).
// 4. Bounds: a frame of more than 1 MiB before the BASP handshake, or of more
//    than `--max-message-size` after it, closes the connection; a large frame
//    is collected in 64 KiB steps, so memory grows with the bytes that
//    arrived, not with the length a header announced.
// 5. Deadlines and caps: a connection that has not completed the BASP
//    handshake within `--handshake-timeout` is closed; at most
//    `--max-pending-connections` such connections at once, the excess
//    answered "busy" and closed; when descriptors run out, a reserve
//    descriptor accepts and closes the excess (logged), so the accept loop
//    does not spin and service resumes when descriptors free up.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/io/fwd.hpp>
#include <caf/timespan.hpp>

namespace troupe {
class net_config;
} // namespace troupe

namespace troupe::detail {

/// The length of the preamble each side sends first.
constexpr size_t preamble_size = 8;

/// The preamble's version byte.
constexpr uint8_t preamble_version = 1;

/// What the server answers to a client's preamble (its last byte).
enum class gate_status : uint8_t {
  ok = 0,
  busy = 1,
  tls_required = 2,
  plain_only = 3,
  unknown_version = 4,
};

/// Returns what a client sends first: "TROUPE", version, `tls`, and, for
/// plain TCP, its 16-byte `nonce` for the cookie exchange.
std::string client_preamble(bool tls, const std::string& nonce);

/// Limits of the gate (see `net_config` for the options).
struct gate_limits {
  caf::timespan handshake_timeout = std::chrono::seconds{5};
  size_t max_pending = 64;
  size_t max_message = size_t{64} << 20;
};

/// Counters of what the gate refused, for logs and tests. Thread-safe reads.
struct gate_counts {
  uint64_t accepted = 0;
  uint64_t refused_busy = 0;
  uint64_t refused_no_fd = 0;
  uint64_t closed_bad_preamble = 0;
  uint64_t closed_bad_cookie = 0;
  uint64_t closed_deadline = 0;
  uint64_t closed_oversized = 0;
  uint64_t closed_tls_failed = 0;
};

class gate_core;

/// The gate of one node: created by `gate_of` on the first `listen` or
/// `dial`, alive as long as the actor system's middleman.
class gate {
public:
  gate(caf::actor_system& sys, std::shared_ptr<gate_core> core);

  /// Opens `bind:port` (0: the OS chooses) and publishes `hdl` there through
  /// the gate. Returns the port.
  caf::expected<uint16_t> listen(const caf::actor& hdl, const std::string& bind,
                                 uint16_t port);

  /// Connects to `host:port` before `deadline`, exchanges the preamble (and
  /// the cookie, or TLS) and returns a scribe for CAF's BASP broker
  /// (`connect_atom`). Blocks until `deadline` at most. Errors name
  /// `timeout`, the user's connect timeout that `deadline` comes from.
  caf::expected<caf::io::scribe_ptr>
  connect(const std::string& host, uint16_t port,
          std::chrono::milliseconds timeout,
          std::chrono::steady_clock::time_point deadline);

  /// The BASP broker that takes the scribes of `connect`.
  caf::actor basp() const;

  /// Returns and forgets why the gate closed the last connection to
  /// `host:port` after `connect` handed it to BASP: `errc::refused` (a TLS
  /// refusal, an oversized message) or `errc::connect_failed` (a deadline);
  /// none if it did not.
  caf::error take_refusal(const std::string& host, uint16_t port);

  gate_counts counts() const;

  bool tls() const;

  caf::actor_system& system() const {
    return sys_;
  }

private:
  caf::actor_system& sys_;
  std::shared_ptr<gate_core> core_;
};

/// Returns the gate of `cfg`'s node on `sys`, creating it on first use (and
/// securing `cfg` for `host` if its owner did not call `secure`). Returns the
/// error of `net_config::secure` or of loading the TLS files.
caf::expected<std::shared_ptr<gate>>
gate_of(caf::actor_system& sys, const net_config& cfg, const std::string& host);

/// Returns `errc::insecure_refused` naming `what` if `cfg` would talk plain
/// TCP to `host` (no key) and `host` is not loopback and `--insecure` was
/// not given.
caf::error check_plain_allowed(const net_config& cfg, const std::string& host,
                               const std::string& what);

} // namespace troupe::detail
