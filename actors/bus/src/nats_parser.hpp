#pragma once

// The NATS client protocol as a server reads it: the operations a client
// sends (CONNECT, PUB, HPUB, SUB, UNSUB, PING, PONG), cut out of a byte
// stream that arrives in pieces of any size. It faces the network: a control
// line longer than `max_control_line`, a payload announced larger than
// `max_payload`, or anything that is not the protocol ends the parse with the
// error text the server sends as `-ERR '<text>'` before it closes the
// connection. It never holds more than one control line and one payload.
// The protocol:
// https://docs.nats.io/reference/reference-protocols/nats-protocol

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::bus::detail {

/// What a NATS client may send.
enum class nats_op_kind : uint8_t {
  connect,
  pub,
  hpub,
  sub,
  unsub,
  ping,
  pong,
};

/// One operation of a client. The views point into the parser's input or
/// buffer: they are valid only while the callback that receives them runs.
struct nats_op {
  nats_op_kind kind = nats_op_kind::ping;
  /// PUB, HPUB, SUB.
  std::string_view subject;
  /// PUB, HPUB: the reply subject, empty if none.
  std::string_view reply;
  /// SUB: the queue group, empty if none.
  std::string_view queue;
  /// SUB, UNSUB: the client's id of the subscription.
  std::string_view sid;
  /// UNSUB: unsubscribe after this many more messages; 0: at once.
  uint64_t max_msgs = 0;
  /// CONNECT: its JSON object, unparsed.
  std::string_view json;
  /// HPUB: the header block (`NATS/1.0` up to and with its blank line).
  std::string_view headers;
  /// PUB, HPUB: the message's bytes.
  std::string_view payload;
};

/// The bounds a client connection may not exceed.
struct nats_limits {
  /// Bytes of a control line (the operation and its arguments), without
  /// its CRLF. nats-server's default is 4096.
  size_t max_control_line = 4096;
  /// Bytes of a message, headers included (the `max_payload` of INFO).
  size_t max_payload = 1024 * 1024;
};

/// Parses a client's byte stream. Not thread-safe: one per connection.
class nats_parser {
public:
  explicit nats_parser(nats_limits limits = {}) : limits_(limits) {
    // nop
  }

  /// Reads `in` and calls `on_op(const nats_op&)` for each operation it
  /// completes, in order; keeps an incomplete tail for the next call.
  /// Returns an empty string, or the reason the client broke the protocol
  /// (text for `-ERR`); operations before the error were handed over,
  /// nothing after it is, and every later call returns the same error.
  template <class F>
  std::string feed(std::string_view in, F&& on_op) {
    if (!error_.empty())
      return error_;
    std::string_view data = in;
    bool buffered = !buf_.empty();
    if (buffered) {
      buf_.append(in.data(), in.size());
      data = buf_;
    }
    size_t pos = 0;
    nats_op op;
    while (pos < data.size()) {
      auto n = parse_one(data.substr(pos), op);
      if (!error_.empty()) {
        buf_.clear();
        buf_.shrink_to_fit();
        return error_;
      }
      if (n == 0)
        break;
      on_op(static_cast<const nats_op&>(op));
      pos += n;
    }
    if (buffered)
      buf_.erase(0, pos);
    else
      buf_.assign(data.substr(pos));
    return {};
  }

  /// Bytes of an incomplete operation held for the next `feed`.
  size_t buffered() const noexcept {
    return buf_.size();
  }

  const nats_limits& limits() const noexcept {
    return limits_;
  }

private:
  // Parses the operation at the front of `in` into `op`. Returns the bytes
  // it took, 0 if `in` holds only part of it, or 0 with `error_` set.
  size_t parse_one(std::string_view in, nats_op& op);

  // Sets `error_` to `what`; returns 0.
  size_t fail(std::string what);

  nats_limits limits_;
  std::string buf_;
  std::string error_;
};

} // namespace troupe::bus::detail
