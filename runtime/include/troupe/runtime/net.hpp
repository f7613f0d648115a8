#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/timespan.hpp>

#include "troupe/runtime/config.hpp"
#include "troupe/runtime/security.hpp"
#include "troupe/runtime/tcp.hpp"

namespace troupe {

/// A `troupe::config` for programs that listen or connect. It loads CAF's
/// middleman and TLS modules, sets the network defaults that must be the same
/// on every node (application identifier `troupe-v1`, heartbeats every
/// 500 ms, a peer silent for 3 s is gone), uses CAF's 'sharing' scheduler
/// (idle threads sleep instead of polling, which matters when several nodes
/// share a machine), and adds these options:
///
/// - `--bind ADDR` (listening programs only): where to listen; default
///   127.0.0.1. Listening on all interfaces must be asked for (`0.0.0.0`).
/// - `--authkey-file F`: the cluster key (see `troupe keygen`); every node
///   derives the same CA from it and issues itself a certificate, so
///   connections are mutual TLS.
/// - `--tls-ca F`, `--tls-cert F`, `--tls-key F`: mutual TLS with your own
///   certificate files instead.
/// - `--insecure`: allow plain TCP off loopback (logged as a warning).
/// - `--cookie-file F`: without a key, plain-TCP peers prove to each other
///   that they can read the same cookie file (default `$TROUPE_COOKIE_FILE`
///   or `~/.troupe/cookie`, created on first use).
/// - `--handshake-timeout T` (default 5s): a connection that has not
///   completed troupe's and CAF's handshake within T is closed.
/// - `--max-pending-connections N` (default 64): connections still in
///   handshake at once; more are answered "busy" and closed.
/// - `--max-message-size N` (default 64 MiB): a larger message closes the
///   connection that announced it.
///
/// Every `listen` and `dial` goes through troupe's gate (see the README's
/// Security section): a preamble, then TLS if there is a key, with the
/// limits above, before CAF reads a byte.
///
/// Call `secure()` after `parse()` and before the node starts: it decides
/// between plain TCP and TLS for the given address, prepares and checks the
/// certificate files and returns a clear error if something is wrong. If a
/// program does not call it, the first `listen` or `dial` does: a key always
/// means TLS. Not thread-safe, like `config`.
class net_config : public config {
public:
  /// Whether the program listens (shows `--bind`) or only connects.
  enum class role { listen, connect };

  std::string bind = "127.0.0.1";
  std::string authkey_file;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  bool insecure = false;
  std::string cookie_file;
  caf::timespan handshake_timeout = std::chrono::seconds{5};
  size_t max_pending_connections = 64;
  size_t max_message_size = size_t{64} << 20;

  explicit net_config(role r);

  /// Removes the private directory of derived certificates, if any.
  ~net_config() override;

  /// Decides how to talk to `host` (the bind address or the peer) and
  /// prepares TLS: with `--authkey-file`, derives the cluster CA and this
  /// node's certificate into a private directory; with `--tls-*`, checks the
  /// files. Plain TCP is allowed only if `host` is loopback or `--insecure`
  /// was given. Returns `errc::tls_config` or `errc::insecure_refused` with a
  /// message for the user.
  [[nodiscard]] caf::error secure(const std::string& host);

  /// Returns whether `secure` succeeded: `listen` and `dial` refuse a
  /// config for which it did not (its key or TLS options would be ignored).
  bool secured() const noexcept {
    return secured_;
  }

  /// Returns whether connections use TLS (valid after `secure`).
  bool tls() const noexcept {
    return tls_;
  }

  /// Returns whether plain TCP off loopback was allowed by `--insecure`
  /// (the program should log a warning).
  bool insecure_plain() const noexcept {
    return insecure_plain_;
  }

  /// Returns the cookie that authenticates plain-TCP peers (valid after
  /// `secure`, if not `tls()`).
  const std::string& cookie() const noexcept {
    return cookie_;
  }

  /// Returns the TLS files in use (valid after `secure`, if `tls()`).
  const security::tls_files& tls_files() const noexcept {
    return files_;
  }

  /// Where `listen` and `dial` keep the node's gate. @private
  std::shared_ptr<void>& gate_slot() const noexcept {
    return gate_;
  }

private:
  mutable std::shared_ptr<void> gate_;
  bool secured_ = false;
  bool tls_ = false;
  bool insecure_plain_ = false;
  security::tls_files files_;
  std::string private_dir_;
  std::string cookie_;
};

/// Splits `text` (`HOST:PORT`, `[V6]:PORT`) into host and port. Returns
/// `errc::invalid_option_value` naming `text` if it is not of that form (or
/// names port 0, unless `allow_port_zero`: an address to listen on).
[[nodiscard]] caf::error parse_host_port(const std::string& text,
                                         std::string& host, uint16_t& port,
                                         bool allow_port_zero = false);

/// Returns `host:port`, with an IPv6 address in brackets (`[::1]:5000`), as
/// `parse_host_port` reads it back.
std::string format_address(const std::string& host, uint16_t port);

/// Publishes `hdl` at `cfg.bind:port` (port 0: the OS chooses) through the
/// gate: TLS if `cfg` has a key or certificates, plain TCP only on loopback
/// or with `--insecure`. Returns the port, or an error that names the
/// address. Calls `cfg.secure(cfg.bind)` if the program did not.
[[nodiscard]] caf::expected<uint16_t> listen(caf::actor_system& sys,
                                             const caf::actor& hdl,
                                             const net_config& cfg,
                                             uint16_t port);

} // namespace troupe
