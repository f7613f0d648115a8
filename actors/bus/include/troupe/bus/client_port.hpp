#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/expected.hpp>
#include <caf/timespan.hpp>

namespace troupe::bus {

class bus;

/// How a `client_port` serves NATS clients.
struct client_port_options {
  /// Where to listen; port 0: the OS chooses. Plain TCP is refused off
  /// loopback unless `insecure`.
  std::string host = "127.0.0.1";
  uint16_t port = 4222;
  bool insecure = false;
  /// The name in INFO (`server_name`); empty: `troupe`.
  std::string name;
  /// Bytes of one message (headers included), announced in INFO and
  /// enforced: a larger PUB ends the connection with -ERR.
  size_t max_payload = size_t{1} << 20;
  /// Bytes of one control line (an operation and its arguments).
  size_t max_control_line = 4096;
  /// Bytes that may wait to be written to one client. A client that lets
  /// more pile up (it does not read) is a slow consumer: told with
  /// `-ERR 'Slow Consumer'`, its waiting messages dropped and counted, and
  /// cut off, as nats-server does.
  size_t max_pending = size_t{64} << 20;
  /// Subscriptions of one client, and clients at once.
  size_t max_subscriptions = 65536;
  size_t max_connections = 4096;
  /// Credentials a client must send in CONNECT (`auth_token`, or `user`
  /// and `pass`) within `auth_timeout`; none set: no authentication. A
  /// client that sends anything else first, or wrong credentials, gets
  /// `-ERR 'Authorization Violation'` and is cut off.
  std::string token;
  std::string user;
  std::string password;
  caf::timespan auth_timeout = std::chrono::seconds{2};
  /// The server pings a client that has been silent this long; a client
  /// that leaves `max_pings_out` pings unanswered is cut off
  /// (`-ERR 'Stale Connection'`).
  caf::timespan ping_interval = std::chrono::minutes{2};
  uint32_t max_pings_out = 2;
};

/// What a `client_port` has done so far.
struct client_port_stats {
  /// Clients connected now, and ever.
  uint64_t clients = 0;
  uint64_t clients_total = 0;
  /// Messages (and their payload bytes) published by clients, and
  /// delivered to them (written, or waiting to be; bytes: queued).
  uint64_t in_msgs = 0;
  uint64_t in_bytes = 0;
  uint64_t out_msgs = 0;
  uint64_t out_bytes = 0;
  /// Clients cut off as slow consumers, and the messages clients lost: those
  /// waiting for a slow consumer when it was cut off, and those the bus
  /// dropped for a subscription whose buffer was full (counted when the
  /// subscription ends).
  uint64_t slow_consumers = 0;
  uint64_t dropped = 0;
  /// Connections ended for breaking the protocol or a limit.
  uint64_t protocol_errors = 0;
};

/// Serves the NATS client protocol on a bus, so that a NATS client in any
/// language publishes, subscribes and requests on the same subjects as the
/// bus's own subscribers (and, with a `bus_cluster`, on linked nodes).
///
/// ```cpp
/// troupe::bus::bus b{node};
/// auto port = troupe::bus::client_port::open(b, {"127.0.0.1", 4222});
/// // nats pub orders.eu.created hi   -> b's subscribers of orders.>
/// ```
///
/// Supported: INFO, CONNECT (verbose, pedantic, name, auth_token, user,
/// pass), PUB, SUB with and
/// without queue group, UNSUB with a message count, MSG, PING/PONG both
/// ways, +OK and -ERR. One thread serves every client.
///
/// The port lives until the object is destroyed, which closes every client
/// connection; destroy it before its bus.
class client_port {
public:
  /// Listens at `opts.host:opts.port`. Fails with
  /// `troupe::errc::insecure_refused` for plain TCP off loopback without
  /// `insecure`, `troupe::errc::invalid_option_value` for a bad limit, or
  /// `troupe::errc::connect_failed` (the address, errno's text) if it
  /// cannot listen.
  [[nodiscard]] static caf::expected<std::unique_ptr<client_port>>
  open(bus& b, client_port_options opts);

  ~client_port();

  client_port(const client_port&) = delete;
  client_port& operator=(const client_port&) = delete;

  /// The port it listens on.
  uint16_t port() const noexcept;

  /// Returns the counters.
  client_port_stats stats() const;

  struct impl;

private:
  explicit client_port(std::unique_ptr<impl> x);

  std::unique_ptr<impl> impl_;
};

} // namespace troupe::bus
