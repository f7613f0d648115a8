#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/io/middleman_actor.hpp>

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
///
/// Call `secure()` after `parse()` and before the node starts: it decides
/// between plain TCP and TLS for the given address, prepares and checks the
/// certificate files (CAF aborts or hangs on bad ones) and returns a clear
/// error if something is wrong. Not thread-safe, like `config`.
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

  /// Returns the TLS files in use (valid after `secure`, if `tls()`).
  const security::tls_files& tls_files() const noexcept {
    return files_;
  }

private:
  bool secured_ = false;
  bool tls_ = false;
  bool insecure_plain_ = false;
  security::tls_files files_;
  std::string private_dir_;
};

/// Splits `text` (`HOST:PORT`, `[V6]:PORT`) into host and port. Returns
/// `errc::invalid_option_value` naming `text` if it is not of that form (or
/// names port 0, unless `allow_port_zero`: an address to listen on).
[[nodiscard]] caf::error parse_host_port(const std::string& text,
                                         std::string& host, uint16_t& port,
                                         bool allow_port_zero = false);

namespace detail {

/// Returns the `errc::insecure_refused` with which `listen` and `dial` refuse
/// to `what` (e.g. "listen on 127.0.0.1:5000") for a config that was not
/// secured (`net_config::secured`). @private
[[nodiscard]] caf::error not_secured(const std::string& what);

} // namespace detail

/// Publishes `hdl` at `cfg.bind:port` (port 0: the OS chooses), over TLS if
/// `cfg.tls()`. Returns the port, or an error that names the address;
/// `errc::insecure_refused` if `cfg.secure()` did not succeed first (a key
/// given but never applied would otherwise mean plain TCP).
[[nodiscard]] caf::expected<uint16_t> listen(caf::actor_system& sys,
                                             const caf::actor& hdl,
                                             const net_config& cfg,
                                             uint16_t port);

/// Returns the middleman actor that connects to peers the way `cfg` says
/// (the TLS one if `cfg.tls()`). Send it `(connect_atom, host, port)` with
/// a timeout; never call CAF's blocking `remote_actor`.
caf::io::middleman_actor connector(caf::actor_system& sys,
                                   const net_config& cfg);

/// Turns what CAF reports for a failed connect into an error the user can act
/// on (`errc::connect_failed`): CAF says only `disconnect_during_handshake`
/// for a wrong key, a foreign certificate or a TLS/plain mismatch, so this
/// asks the peer again with a diagnostic TLS handshake. May block for up to
/// `timeout`; call it from a detached actor or a plain thread.
[[nodiscard]] caf::error
explain_connect_error(caf::actor_system& sys, const caf::error& err,
                      const std::string& host, uint16_t port,
                      const net_config& cfg, std::chrono::milliseconds timeout);

} // namespace troupe
