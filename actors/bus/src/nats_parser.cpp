#include "nats_parser.hpp"

#include <array>
#include <cstring>

namespace troupe::bus::detail {

namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

// Returns whether `x` is `upper` in any mix of cases (`upper` is upper
// case ASCII).
bool equals_nocase(std::string_view x, std::string_view upper) {
  if (x.size() != upper.size())
    return false;
  for (size_t i = 0; i < x.size(); ++i) {
    auto c = x[i];
    if (c >= 'a' && c <= 'z')
      c = static_cast<char>(c - 'a' + 'A');
    if (c != upper[i])
      return false;
  }
  return true;
}

// The arguments of a control line, split at runs of blanks; `count` is
// how many there were, up to one more than `args` holds (then too many).
struct arguments {
  static constexpr size_t capacity = 4;
  std::array<std::string_view, capacity> args;
  size_t count = 0;
};

arguments split(std::string_view x) {
  arguments result;
  size_t i = 0;
  while (i < x.size()) {
    while (i < x.size() && is_blank(x[i]))
      ++i;
    if (i == x.size())
      break;
    auto start = i;
    while (i < x.size() && !is_blank(x[i]))
      ++i;
    if (result.count == arguments::capacity) {
      ++result.count;
      break;
    }
    result.args[result.count++] = x.substr(start, i - start);
  }
  return result;
}

// Reads a decimal size: digits only, at most 18 of them (so no overflow).
bool parse_size(std::string_view x, uint64_t& out) {
  if (x.empty() || x.size() > 18)
    return false;
  uint64_t n = 0;
  for (auto c : x) {
    if (c < '0' || c > '9')
      return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  out = n;
  return true;
}

} // namespace

size_t nats_parser::fail(std::string what) {
  error_ = std::move(what);
  return 0;
}

size_t nats_parser::parse_one(std::string_view in, nats_op& op) {
  // The control line ends at the first LF; its CR is optional, as for
  // nats-server.
  auto limit = limits_.max_control_line + 2; // with its CRLF
  auto scan = in.size() < limit ? in.size() : limit;
  auto* nl = static_cast<const char*>(std::memchr(in.data(), '\n', scan));
  if (nl == nullptr) {
    if (in.size() >= limit)
      return fail("Maximum Control Line Exceeded");
    return 0;
  }
  auto line_end = static_cast<size_t>(nl - in.data());
  auto after_line = line_end + 1;
  auto line = in.substr(0, line_end);
  if (!line.empty() && line.back() == '\r')
    line.remove_suffix(1);
  if (line.size() > limits_.max_control_line)
    return fail("Maximum Control Line Exceeded");
  size_t name_end = 0;
  while (name_end < line.size() && !is_blank(line[name_end]))
    ++name_end;
  auto name = line.substr(0, name_end);
  auto rest = line.substr(name_end);
  op = nats_op{};
  if (equals_nocase(name, "PING") || equals_nocase(name, "PONG")) {
    if (split(rest).count != 0)
      return fail("Unknown Protocol Operation");
    op.kind
      = equals_nocase(name, "PING") ? nats_op_kind::ping : nats_op_kind::pong;
    return after_line;
  }
  if (equals_nocase(name, "CONNECT")) {
    size_t i = 0;
    while (i < rest.size() && is_blank(rest[i]))
      ++i;
    if (i == 0 || i == rest.size())
      return fail("Unknown Protocol Operation");
    op.kind = nats_op_kind::connect;
    op.json = rest.substr(i);
    return after_line;
  }
  auto args = split(rest);
  auto& a = args.args;
  if (rest.empty() || !is_blank(rest.front()))
    return fail("Unknown Protocol Operation");
  if (equals_nocase(name, "SUB")) {
    if (args.count < 2 || args.count > 3)
      return fail("Invalid Subscription: SUB takes a subject, an optional "
                  "queue group and a sid");
    op.kind = nats_op_kind::sub;
    op.subject = a[0];
    if (args.count == 3)
      op.queue = a[1];
    op.sid = a[args.count - 1];
    return after_line;
  }
  if (equals_nocase(name, "UNSUB")) {
    if (args.count < 1 || args.count > 2)
      return fail("Invalid Unsubscription: UNSUB takes a sid and an optional "
                  "number of messages");
    op.kind = nats_op_kind::unsub;
    op.sid = a[0];
    if (args.count == 2 && !parse_size(a[1], op.max_msgs))
      return fail("Invalid Unsubscription: bad number of messages");
    return after_line;
  }
  bool headers = equals_nocase(name, "HPUB");
  if (!headers && !equals_nocase(name, "PUB"))
    return fail("Unknown Protocol Operation");
  // PUB <subject> [reply] <size>, HPUB <subject> [reply] <hdr size> <size>
  size_t sizes = headers ? 2 : 1;
  if (args.count < 1 + sizes || args.count > 2 + sizes)
    return fail(headers ? "Invalid Publish: HPUB takes a subject, an optional "
                          "reply subject, a header size and a total size"
                        : "Invalid Publish: PUB takes a subject, an optional "
                          "reply subject and a size");
  op.kind = headers ? nats_op_kind::hpub : nats_op_kind::pub;
  op.subject = a[0];
  if (args.count == 2 + sizes)
    op.reply = a[1];
  uint64_t total = 0;
  uint64_t header_size = 0;
  if (!parse_size(a[args.count - 1], total)
      || (headers && !parse_size(a[args.count - 2], header_size)))
    return fail("Invalid Publish: bad size");
  if (total > limits_.max_payload)
    return fail("Maximum Payload Violation");
  if (header_size > total)
    return fail("Invalid Publish: header size above total size");
  // The payload and its CRLF must be here in full.
  auto needed = after_line + total + 2;
  if (in.size() < needed)
    return 0;
  if (in[after_line + total] != '\r' || in[after_line + total + 1] != '\n')
    return fail("Invalid Publish: payload not followed by CRLF (size "
                "wrong?)");
  auto body = in.substr(after_line, total);
  op.headers = body.substr(0, header_size);
  op.payload = body.substr(header_size);
  return needed;
}

} // namespace troupe::bus::detail
