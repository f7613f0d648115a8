// libFuzzer target: the NATS client protocol parser, which reads what any
// client sends to a node's client port. The first input byte chooses where
// the rest is cut into pieces (a socket delivers any split); then:
// - the parse in pieces hands over the same operations and ends with the
//   same error as the parse in one piece;
// - the parser never holds more than one control line and one payload;
// - each operation, written out again as a client would, parses back to
//   itself.
// Small limits, so that inputs reach them.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "check.hpp"

// Private to troupe_bus, so included by path: this target must test the very
// code the client port runs.
#include "../actors/bus/src/nats_parser.hpp"

namespace {

using troupe::bus::detail::nats_limits;
using troupe::bus::detail::nats_op;
using troupe::bus::detail::nats_op_kind;
using troupe::bus::detail::nats_parser;

constexpr nats_limits limits{256, 1024};

// An operation with its views copied, and written out as a client sends it.
std::string encode(const nats_op& op) {
  std::string out;
  auto add = [&](std::string_view x) {
    out += ' ';
    out.append(x.data(), x.size());
  };
  switch (op.kind) {
    case nats_op_kind::connect:
      out = "CONNECT";
      add(op.json);
      break;
    case nats_op_kind::ping:
      out = "PING";
      break;
    case nats_op_kind::pong:
      out = "PONG";
      break;
    case nats_op_kind::sub:
      out = "SUB";
      add(op.subject);
      if (!op.queue.empty())
        add(op.queue);
      add(op.sid);
      break;
    case nats_op_kind::unsub:
      out = "UNSUB";
      add(op.sid);
      if (op.max_msgs != 0)
        add(std::to_string(op.max_msgs));
      break;
    case nats_op_kind::pub:
    case nats_op_kind::hpub:
      out = op.kind == nats_op_kind::pub ? "PUB" : "HPUB";
      add(op.subject);
      if (!op.reply.empty())
        add(op.reply);
      if (op.kind == nats_op_kind::hpub)
        add(std::to_string(op.headers.size()));
      add(std::to_string(op.headers.size() + op.payload.size()));
      out += "\r\n";
      out.append(op.headers.data(), op.headers.size());
      out.append(op.payload.data(), op.payload.size());
      break;
  }
  out += "\r\n";
  return out;
}

struct run {
  std::vector<std::string> ops;
  std::string error;
};

run parse(std::string_view in, size_t step) {
  nats_parser p{limits};
  run result;
  for (size_t i = 0; i < in.size() && result.error.empty(); i += step) {
    result.error = p.feed(in.substr(i, step), [&](const nats_op& op) {
      result.ops.push_back(encode(op));
    });
    TROUPE_FUZZ_CHECK(p.buffered()
                      <= limits.max_control_line + limits.max_payload + 4);
  }
  return result;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  size_t step = data[0] % 16 + 1;
  std::string_view in{reinterpret_cast<const char*>(data) + 1, size - 1};
  auto whole = parse(in, in.size() + 1);
  auto pieces = parse(in, step);
  TROUPE_FUZZ_CHECK(whole.ops == pieces.ops);
  TROUPE_FUZZ_CHECK(whole.error == pieces.error);
  for (auto& op : whole.ops) {
    auto again = parse(op, op.size() + 1);
    TROUPE_FUZZ_CHECK(again.error.empty());
    TROUPE_FUZZ_CHECK(again.ops.size() == 1);
    TROUPE_FUZZ_CHECK(again.ops.front() == op);
  }
  return 0;
}
