// The NATS client protocol parser: every operation a client sends, in one
// piece and split at every byte, and the errors that end a connection (too
// long a line, too large a payload, not the protocol).

#include "nats_parser.hpp"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace troupe::bus::detail {

namespace {

/// An operation copied out of the parser's buffer, to compare after the
/// callback.
struct seen_op {
  nats_op_kind kind;
  std::string subject;
  std::string reply;
  std::string queue;
  std::string sid;
  uint64_t max_msgs;
  std::string json;
  std::string headers;
  std::string payload;

  bool operator==(const seen_op& other) const {
    return kind == other.kind && subject == other.subject
           && reply == other.reply && queue == other.queue && sid == other.sid
           && max_msgs == other.max_msgs && json == other.json
           && headers == other.headers && payload == other.payload;
  }
};

seen_op copy(const nats_op& x) {
  return seen_op{x.kind,
                 std::string{x.subject},
                 std::string{x.reply},
                 std::string{x.queue},
                 std::string{x.sid},
                 x.max_msgs,
                 std::string{x.json},
                 std::string{x.headers},
                 std::string{x.payload}};
}

/// What a parse of some input gave: the operations and the error.
struct outcome {
  std::vector<seen_op> ops;
  std::string error;
  size_t buffered = 0;
};

/// Feeds `in` to a fresh parser in pieces of `step` bytes (0: in one).
outcome parse(const std::string& in, size_t step = 0, nats_limits limits = {}) {
  nats_parser p{limits};
  outcome result;
  auto on_op = [&](const nats_op& op) { result.ops.push_back(copy(op)); };
  if (step == 0)
    step = in.size() + 1;
  for (size_t i = 0; i < in.size() && result.error.empty(); i += step)
    result.error = p.feed(std::string_view{in}.substr(i, step), on_op);
  result.buffered = p.buffered();
  return result;
}

seen_op pub(std::string subject, std::string reply, std::string payload) {
  return seen_op{
    nats_op_kind::pub, std::move(subject), std::move(reply), {}, {}, 0, {}, {},
    std::move(payload)};
}

seen_op sub(std::string subject, std::string queue, std::string sid) {
  return seen_op{nats_op_kind::sub,
                 std::move(subject),
                 {},
                 std::move(queue),
                 std::move(sid),
                 0,
                 {},
                 {},
                 {}};
}

seen_op simple(nats_op_kind kind) {
  return seen_op{kind, {}, {}, {}, {}, 0, {}, {}, {}};
}

} // namespace

TEST_CASE("nats parser: a session, in one piece and split at every byte",
          "[bus][nats]") {
  std::string in
    = "CONNECT {\"verbose\":false,\"headers\":true}\r\n"
      "PING\r\n"
      "SUB foo.* 1\r\n"
      "sub\tfoo.>  workers\t 2\r\n"
      "PUB foo.bar 5\r\nhello\r\n"
      "pub foo.bar _INBOX.x 0\r\n\r\n"
      "HPUB foo.h reply 19 24\r\nNATS/1.0\r\nA: bb\r\n\r\nhello\r\n"
      "PUB bin 4\r\n\r\nZ\n\r\n"
      "UNSUB 1\r\n"
      "UNSUB 2 10\r\n"
      "PONG\n";
  in[in.find("Z\n\r\nUNSUB")] = '\0'; // a payload may hold anything
  std::vector<seen_op> expected;
  expected.push_back(simple(nats_op_kind::connect));
  expected.back().json = "{\"verbose\":false,\"headers\":true}";
  expected.push_back(simple(nats_op_kind::ping));
  expected.push_back(sub("foo.*", "", "1"));
  expected.push_back(sub("foo.>", "workers", "2"));
  expected.push_back(pub("foo.bar", "", "hello"));
  expected.push_back(pub("foo.bar", "_INBOX.x", ""));
  expected.push_back(pub("foo.h", "reply", "hello"));
  expected.back().kind = nats_op_kind::hpub;
  expected.back().headers = "NATS/1.0\r\nA: bb\r\n\r\n";
  expected.push_back(pub("bin", "", std::string{"\r\n\0\n", 4}));
  expected.push_back(simple(nats_op_kind::unsub));
  expected.back().sid = "1";
  expected.push_back(simple(nats_op_kind::unsub));
  expected.back().sid = "2";
  expected.back().max_msgs = 10;
  expected.push_back(simple(nats_op_kind::pong));
  for (size_t step : {size_t{0}, size_t{1}, size_t{2}, size_t{7}}) {
    CAPTURE(step);
    auto r = parse(in, step);
    CHECK(r.error.empty());
    CHECK(r.ops == expected);
    CHECK(r.buffered == 0);
  }
}

TEST_CASE("nats parser: an incomplete operation waits for the rest",
          "[bus][nats]") {
  auto r = parse("PUB foo 10\r\nhello");
  CHECK(r.error.empty());
  CHECK(r.ops.empty());
  CHECK(r.buffered == 17);
  r = parse("SUB foo");
  CHECK(r.ops.empty());
  CHECK(r.buffered == 7);
}

TEST_CASE("nats parser: what breaks the protocol ends the parse with -ERR "
          "text",
          "[bus][nats]") {
  nats_limits small;
  small.max_control_line = 32;
  small.max_payload = 16;
  struct bad {
    std::string in;
    std::string error;
  };
  std::vector<bad> cases{
    {"GET / HTTP/1.1\r\n", "Unknown Protocol Operation"},
    {"\x16\x03\x01\x02\x01\xfc\x03\x03\n", "Unknown Protocol Operation"},
    {"PUB\r\n", "Unknown Protocol Operation"},
    {"PUBLISH foo 1\r\nx\r\n", "Unknown Protocol Operation"},
    {"PING x\r\n", "Unknown Protocol Operation"},
    {"CONNECT\r\n", "Unknown Protocol Operation"},
    {"\r\n", "Unknown Protocol Operation"},
    {"PUB foo\r\n", "Invalid Publish: PUB takes a subject, an optional reply "
                    "subject and a size"},
    {"PUB foo a b 1\r\n", "Invalid Publish: PUB takes a subject, an optional "
                          "reply subject and a size"},
    {"PUB foo -1\r\n", "Invalid Publish: bad size"},
    {"PUB foo 1x\r\n", "Invalid Publish: bad size"},
    {"PUB foo 99999999999999999999\r\n", "Invalid Publish: bad size"},
    {"PUB foo 17\r\n", "Maximum Payload Violation"},
    {"HPUB foo 10 17\r\n", "Maximum Payload Violation"},
    {"HPUB foo 5 4\r\n", "Invalid Publish: header size above total size"},
    {"PUB foo 2\r\nabc\r\n", "Invalid Publish: payload not followed by CRLF "
                             "(size wrong?)"},
    {"SUB foo\r\n", "Invalid Subscription: SUB takes a subject, an optional "
                    "queue group and a sid"},
    {"UNSUB\r\n", "Unknown Protocol Operation"},
    {"UNSUB 1 x\r\n", "Invalid Unsubscription: bad number of messages"},
    {"SUB " + std::string(40, 'a') + " 1\r\n", "Maximum Control Line Exceeded"},
    // No LF within the bound: refused before the line ends.
    {std::string(40, 'x'), "Maximum Control Line Exceeded"},
  };
  for (auto& c : cases) {
    CAPTURE(c.in);
    for (size_t step : {size_t{0}, size_t{1}}) {
      auto r = parse(c.in, step, small);
      CHECK(r.error == c.error);
      CHECK(r.ops.empty());
      CHECK(r.buffered == 0);
    }
  }
}

TEST_CASE("nats parser: operations before an error are handed over - none "
          "after it",
          "[bus][nats]") {
  nats_parser p;
  std::vector<seen_op> ops;
  auto on_op = [&](const nats_op& op) { ops.push_back(copy(op)); };
  auto err = p.feed("PING\r\nBOGUS\r\nPING\r\n", on_op);
  CHECK(err == "Unknown Protocol Operation");
  CHECK(ops.size() == 1);
  CHECK(p.feed("PING\r\n", on_op) == err);
  CHECK(ops.size() == 1);
}

TEST_CASE("nats parser: a payload at the limit passes - the buffer never "
          "holds more than a line and a payload",
          "[bus][nats]") {
  nats_limits limits;
  limits.max_payload = 1 << 20;
  std::string payload(limits.max_payload, 'p');
  auto in
    = "PUB big " + std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
  nats_parser p{limits};
  size_t got = 0;
  size_t most = 0;
  for (size_t i = 0; i < in.size(); i += 65536) {
    auto err
      = p.feed(std::string_view{in}.substr(i, 65536), [&](const nats_op& op) {
          CHECK(op.payload == payload);
          ++got;
        });
    REQUIRE(err.empty());
    most = std::max(most, p.buffered());
  }
  CHECK(got == 1);
  CHECK(p.buffered() == 0);
  CHECK(most <= limits.max_payload + limits.max_control_line + 4);
}

} // namespace troupe::bus::detail
