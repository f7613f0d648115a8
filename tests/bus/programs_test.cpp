// The bus across processes, driven through the troupe CLI on 127.0.0.1 with
// OS-chosen ports: three nodes in a chain with wildcard and queue-group
// delivery across them, a node killed and restarted, request/reply with and
// without responders, TLS, and bad input.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <signal.h>
#include <unistd.h>

#include "net_util.hpp"
#include "process.hpp"

namespace troupe::test {

namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// Generous: CI also runs the suite under AddressSanitizer.
constexpr milliseconds patience = 60s;

using args = std::vector<std::string>;

std::string at(uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

/// A `troupe node` process and its port.
struct bus_node {
  std::unique_ptr<child_process> proc;
  uint16_t port = 0;
};

/// Starts `troupe node --listen 127.0.0.1:PORT` (0: the OS chooses) linked
/// to `peers`, with `extra` options; returns it once it listens and, if it
/// has peers, has linked to the first.
bus_node start_node(const args& peers = {}, uint16_t port = 0,
                    const args& extra = {}) {
  args argv{bin("troupe"), "node", "--listen", at(port)};
  if (!peers.empty()) {
    std::string list;
    for (auto& p : peers)
      list += (list.empty() ? "" : ",") + p;
    argv.insert(argv.end(), {"--connect", list});
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  bus_node n;
  n.proc = std::make_unique<child_process>(argv);
  if (!n.proc->wait_for_stdout("listening on 127.0.0.1:", patience)) {
    auto r = n.proc->wait(1s);
    FAIL("troupe node did not start: " << r.err);
  }
  REQUIRE(n.proc->wait_for_stdout("\n", patience));
  auto line = lines(n.proc->out()).front();
  n.port = static_cast<uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  REQUIRE(n.port != 0);
  if (!peers.empty())
    REQUIRE(n.proc->wait_for_stderr("bus: linked to", patience));
  return n;
}

/// Three nodes in a chain: B linked to A, C linked to B.
struct chain {
  bus_node a;
  bus_node b;
  bus_node c;
};

chain start_chain() {
  chain x;
  x.a = start_node();
  x.b = start_node({at(x.a.port)});
  x.c = start_node({at(x.b.port)});
  return x;
}

/// Starts `troupe sub PATTERN --connect node` with `extra` options and
/// returns it once it is subscribed.
std::unique_ptr<child_process> start_sub(const bus_node& node,
                                         const std::string& pattern,
                                         const args& extra = {}) {
  args argv{bin("troupe"), "sub", pattern, "--connect", at(node.port)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = std::make_unique<child_process>(argv);
  REQUIRE(p->wait_for_stderr("subscribed to '" + pattern + "'", patience));
  return p;
}

/// Runs a troupe client command to its end.
process_result troupe(const args& xs) {
  args argv{bin("troupe")};
  argv.insert(argv.end(), xs.begin(), xs.end());
  return run_process(argv, patience);
}

/// Publishes `text` on `subject` through `node` once somebody subscribed to
/// it (waiting up to `wait`; empty: at once); returns the pub's result.
process_result pub(const bus_node& node, const std::string& subject,
                   const std::string& text, const args& extra = {},
                   const std::string& wait = "30s") {
  args xs{"pub", subject, text, "--connect", at(node.port)};
  if (!wait.empty())
    xs.insert(xs.end(), {"--wait-for-subscriber", wait});
  xs.insert(xs.end(), extra.begin(), extra.end());
  return troupe(xs);
}

/// Returns the lines of `p`'s stdout, once it exited (bounded).
std::vector<std::string> output_of(child_process& p) {
  auto r = p.wait(patience);
  CHECK(r.exit_code == 0);
  CHECK_FALSE(r.timed_out);
  return lines(r.out);
}

} // namespace

TEST_CASE("bus programs: three chained nodes deliver by wildcard across two "
          "hops and only what matches") {
  auto [a, b, c] = start_chain();
  // B's subscriber first: its interest reaches A before C's (both pass B's
  // router in that order), so waiting at A for a subject that only C's
  // pattern matches means A knows both.
  auto near = start_sub(b, "orders.*.created", {"--count", "2"});
  auto far = start_sub(c, "orders.>", {"--count", "4"});
  for (auto& [subject, text] : std::vector<std::pair<std::string, std::string>>{
         {"orders.eu", "p0"},
         {"orders.eu.created", "p1"},
         {"orders.us.created", "p2"},
         {"other.thing", "p3"},
         {"orders.us.shipped", "p4"}}) {
    // Nobody subscribed to other.thing: publish it without waiting.
    auto r = pub(a, subject, text, {}, subject == "other.thing" ? "" : "30s");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
  }
  CHECK(output_of(*far)
        == std::vector<std::string>{"orders.eu: p0", "orders.eu.created: p1",
                                    "orders.us.created: p2",
                                    "orders.us.shipped: p4"});
  CHECK(output_of(*near)
        == std::vector<std::string>{"orders.eu.created: p1",
                                    "orders.us.created: p2"});
}

TEST_CASE("bus programs: pub sends any bytes from a file or stdin and sub "
          "prints them as they are") {
  auto node = start_node();
  auto sub = start_sub(node, "bytes", {"--count", "2"});
  // A NUL, a newline-free binary tail, and bytes that are no UTF-8.
  std::string payload{"a\0b\xff\x01z", 6};
  char tmpl[] = "/tmp/troupe-pub-file-XXXXXX";
  int fd = ::mkstemp(tmpl);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, payload.data(), payload.size())
          == static_cast<ssize_t>(payload.size()));
  ::close(fd);
  auto from_file = troupe({"pub", "bytes", "--file", tmpl, "--connect",
                           at(node.port), "--wait-for-subscriber", "30s"});
  INFO(from_file.err);
  CHECK(from_file.exit_code == 0);
  // TEXT '-': the payload is stdin.
  auto from_stdin
    = run_process({"/bin/sh", "-c",
                   "printf 'x\\000y' | \"" + bin("troupe")
                     + "\" pub bytes - --connect " + at(node.port)},
                  patience);
  INFO(from_stdin.err);
  CHECK(from_stdin.exit_code == 0);
  auto r = sub->wait(patience);
  CHECK(r.exit_code == 0);
  CHECK(r.out
        == "bytes: " + payload + "\nbytes: " + std::string{"x\0y", 3} + "\n");
  std::remove(tmpl);
  auto missing = troupe({"pub", "bytes", "--file", "/nonexistent/payload",
                         "--connect", at(node.port)});
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.err, Catch::Contains("cannot read --file"));
}

TEST_CASE("bus programs: a queue group spread over two nodes gets each "
          "message once") {
  auto [a, b, c] = start_chain();
  auto member_a = start_sub(a, "jobs", {"--queue", "workers"});
  auto member_c = start_sub(c, "jobs", {"--queue", "workers"});
  auto plain = start_sub(b, "jobs", {"--count", "200"});
  auto r = pub(b, "jobs", "job {n}", {"--count", "200"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(output_of(*plain).size() == 200);
  // Every job reaches one member: wait until the two hold 200 together.
  auto count = [](child_process& p) {
    return static_cast<size_t>(std::count_if(
      p.out().begin(), p.out().end(), [](char ch) { return ch == '\n'; }));
  };
  auto deadline = std::chrono::steady_clock::now() + patience;
  while (count(*member_a) + count(*member_c) < 200
         && std::chrono::steady_clock::now() < deadline) {
    member_a->wait_for_count("jobs: ", count(*member_a) + 1, 100ms);
    member_c->wait_for_count("jobs: ", count(*member_c) + 1, 100ms);
  }
  member_a->send_signal(SIGTERM);
  member_c->send_signal(SIGTERM);
  std::multiset<std::string> got;
  size_t from_a = 0;
  for (auto* m : {member_a.get(), member_c.get()}) {
    auto out = output_of(*m);
    if (m == member_a.get())
      from_a = out.size();
    got.insert(out.begin(), out.end());
  }
  std::multiset<std::string> want;
  for (int i = 1; i <= 200; ++i)
    want.insert("jobs: job " + std::to_string(i));
  CHECK(got == want);
  // Both sides of B take turns.
  CHECK(from_a > 0);
  CHECK(from_a < 200);
}

TEST_CASE("bus programs: a killed node is dropped from routing and its "
          "restart rejoins the chain") {
  auto [a, b, c] = start_chain();
  auto far = start_sub(c, "news.>", {"--count", "2"});
  auto r1 = pub(a, "news.first", "before");
  REQUIRE(r1.exit_code == 0);
  REQUIRE(far->wait_for_stdout("news.first: before", patience));
  auto b_port = b.port;
  b.proc->send_signal(SIGKILL);
  b.proc->wait(patience);
  // A noticed (the connection reset): nobody behind it any more, so a
  // publisher that waits for a subscriber gives up, and a request fails at
  // once.
  auto gone = pub(a, "news.lost", "while down", {}, "1s");
  CHECK(gone.exit_code == 1);
  CHECK(gone.err.find("nobody subscribed to 'news.lost'") != std::string::npos);
  // The same port again: C redials B, B dials A.
  auto b2 = start_node({at(a.port)}, b_port);
  REQUIRE(c.proc->wait_for_stderr("lost peer", patience));
  auto r2 = pub(a, "news.second", "after");
  INFO(r2.err);
  INFO(r2.timed_out);
  REQUIRE(r2.exit_code == 0);
  CHECK(
    output_of(*far)
    == std::vector<std::string>{"news.first: before", "news.second: after"});
}

TEST_CASE("bus programs: a frozen node does not hold up publishers and "
          "rejoins when it thaws") {
  auto [a, b, c] = start_chain();
  auto far = start_sub(c, "ticks");
  REQUIRE(pub(a, "ticks", "first").exit_code == 0);
  REQUIRE(far->wait_for_stdout("ticks: first", patience));
  // B stops answering, without closing its connections: A's publishers go
  // on; A drops B once its heartbeats stay away (3 s) and with it C's
  // interest, so the pub's flush ends then.
  b.proc->send_signal(SIGSTOP);
  auto during = pub(a, "ticks", "lost {n}", {"--count", "1000"}, "");
  INFO(during.err);
  CHECK(during.exit_code == 0);
  CHECK_FALSE(during.timed_out);
  REQUIRE(a.proc->wait_for_stderr("lost peer", patience));
  // Thawed, B finds its link to A gone, redials, and C's subscriber is
  // reachable again.
  b.proc->send_signal(SIGCONT);
  auto after = pub(a, "ticks", "second");
  INFO(after.err);
  if (after.exit_code != 0) {
    b.proc->send_signal(SIGTERM);
    INFO("B said: " << b.proc->wait(patience).err);
    REQUIRE(after.exit_code == 0);
  }
  // What was published while B was frozen may or may not have reached C
  // (at most once); the last message did.
  REQUIRE(far->wait_for_stdout("ticks: second", patience));
}

TEST_CASE("bus programs: a subscriber frozen until its node drops it says "
          "how many messages it lost") {
  // The node drops a peer silent for 10 s here (default 3 s): time for the
  // publishers below, even on a loaded machine.
  auto node = start_node({}, 0, {"--middleman.connection-timeout=10s"});
  auto sub = start_sub(node, "flood");
  // Frozen before the flood: the node sends it at most 4 batches (its
  // window) and holds the rest until it drops the silent link; what was
  // already in the socket still arrives when it thaws. One batch per
  // publisher at least, so the fifth's messages are certainly held back.
  sub->send_signal(SIGSTOP);
  constexpr int publishers = 5;
  constexpr int each = 20'000;
  constexpr int n = publishers * each;
  for (int i = 0; i < publishers; ++i) {
    auto r = pub(node, "flood", "m {n}", {"--count", std::to_string(each)});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
  }
  // On failure: what the node and the subscriber said.
  auto explain = [&](const char* what) {
    sub->send_signal(SIGKILL);
    node.proc->send_signal(SIGKILL);
    auto s = sub->wait(patience);
    auto nd = node.proc->wait(patience);
    FAIL(what << "\nsub printed " << lines(s.out).size()
              << " lines and said: " << s.err << "\nnode said: " << nd.err);
  };
  if (!node.proc->wait_for_stderr("lost peer 'sub-", patience))
    explain("the node did not drop the frozen subscriber");
  sub->send_signal(SIGCONT);
  // It relinks, and the node tells it how many it routed over the old link.
  if (!sub->wait_for_stderr(" (node '", patience))
    explain("the subscriber did not report its loss");
  // A last message, after everything that arrived over the old link.
  child_process end{args{bin("troupe"), "pub", "flood", "end", "--connect",
                         at(node.port), "--wait-for-subscriber", "30s"}};
  if (!sub->wait_for_stdout("flood: end\n", patience))
    explain("the last message did not arrive");
  CHECK(end.wait(patience).exit_code == 0);
  sub->send_signal(SIGTERM);
  auto res = sub->wait(patience);
  INFO(res.err);
  uint64_t lost = 0;
  for (auto& line : lines(res.err)) {
    auto at_lost = line.find(": lost ");
    if (at_lost != std::string::npos && line.rfind("troupe sub", 0) == 0)
      lost += std::stoull(line.substr(at_lost + 7));
  }
  auto got = lines(res.out).size() - 1; // not 'end'
  CHECK(lost > 0);
  CHECK(got + lost == n);
  CHECK_THAT(res.err, Catch::Contains("its link to this node was lost"));
}

TEST_CASE("bus programs: request and reply across nodes with and without "
          "responders") {
  auto a = start_node();
  auto b = start_node({at(a.port)});
  auto responder = std::make_unique<child_process>(
    args{bin("troupe"), "reply", "echo", "--connect", at(b.port)});
  REQUIRE(responder->wait_for_stderr("answering requests on 'echo'", patience));
  auto r = troupe({"request", "echo", "ping 1", "--connect", at(a.port),
                   "--timeout", "30s", "--wait-for-subscriber", "30s"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "ping 1\n");
  CHECK(responder->wait_for_stdout("echo: ping 1\n", patience));
  // Nobody on the subject: 'no responders' at once, not after the timeout.
  auto none = troupe({"request", "nobody.home", "hi", "--connect", at(a.port),
                      "--timeout", "60s"});
  CHECK(none.exit_code == 1);
  CHECK(none.err.find("no responders") != std::string::npos);
  CHECK(none.elapsed < 30s);
  // A subscriber that never answers: the timeout.
  auto mute = start_sub(b, "mute");
  auto late = troupe({"request", "mute", "hi", "--connect", at(a.port),
                      "--timeout", "300ms", "--wait-for-subscriber", "30s"});
  CHECK(late.exit_code == 1);
  CHECK(late.err.find("300ms") != std::string::npos);
  CHECK(mute->wait_for_stdout("mute: hi", patience));
  // The node of a responder that never answers dies: the request, two links
  // away, fails at once, not after its 60 s.
  child_process waiting{args{bin("troupe"), "request", "mute", "again",
                             "--connect", at(a.port), "--timeout", "60s"}};
  CHECK(mute->wait_for_stdout("mute: again", patience));
  b.proc->send_signal(SIGKILL);
  auto lost = waiting.wait(patience);
  INFO(lost.err);
  CHECK(lost.exit_code == 1);
  CHECK_FALSE(lost.timed_out);
  CHECK_THAT(lost.err, Catch::Contains("lost the request on 'mute'"));
  CHECK_THAT(lost.err, Catch::Contains("lost the link to peer 'node-"));
}

TEST_CASE("bus programs: TLS links with one cluster key and refusals with "
          "another or none") {
  key_dir keys;
  auto other = keys.make_key("other.key");
  args tls{"--authkey-file", keys.key()};
  auto a = start_node({}, 0, tls);
  auto b = start_node({at(a.port)}, 0, tls);
  auto sub = std::make_unique<child_process>(
    args{bin("troupe"), "sub", "secret.>", "--connect", at(b.port),
         "--authkey-file", keys.key(), "--count", "1"});
  REQUIRE(sub->wait_for_stderr("subscribed to", patience));
  auto r
    = troupe({"pub", "secret.plan", "attack at dawn", "--connect", at(a.port),
              "--authkey-file", keys.key(), "--wait-for-subscriber", "30s"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(output_of(*sub)
        == std::vector<std::string>{"secret.plan: attack at dawn"});
  // Garbage, and a BASP header announcing 4 GiB (which plain CAF would
  // allocate): the TLS handshake fails first.
  std::mt19937 gen{7};
  std::string noise(100'000, '\0');
  for (auto& ch : noise)
    ch = static_cast<char>(gen());
  CHECK(send_raw(a.port, noise));
  std::string header(32, '\0');
  header[0] = 1;                                          // server handshake
  header[4] = header[5] = header[6] = header[7] = '\xff'; // payload_len
  CHECK(send_raw(a.port, header));
  CHECK(rss_kib(a.proc->pid()) < 512 * 1024);
  auto wrong = troupe({"sub", "secret.>", "--connect", at(a.port),
                       "--authkey-file", other, "--connect-timeout", "10s"});
  INFO(wrong.err);
  CHECK(wrong.exit_code == 1);
  CHECK(wrong.err.find("not signed by our cluster CA") != std::string::npos);
  auto plain = troupe(
    {"sub", "secret.>", "--connect", at(a.port), "--connect-timeout", "10s"});
  CHECK(plain.exit_code == 1);
  CHECK(plain.err.find("requires TLS") != std::string::npos);
}

TEST_CASE("bus programs: a plain node survives garbage on its port and "
          "refuses a link that closes a loop") {
  auto a = start_node();
  auto b = start_node({at(a.port)});
  std::mt19937 gen{42};
  std::string noise(100'000, '\0');
  for (auto& ch : noise)
    ch = static_cast<char>(gen());
  CHECK(send_raw(a.port, noise));
  // A third node linked to both: the second link would close a loop.
  auto c = start_node({at(a.port), at(b.port)});
  CHECK(c.proc->wait_for_stderr("must form a tree", patience));
  // The bus still works across A and B.
  auto sub = start_sub(b, "still.alive", {"--count", "1"});
  auto r = pub(a, "still.alive", "yes");
  CHECK(r.exit_code == 0);
  CHECK(output_of(*sub) == std::vector<std::string>{"still.alive: yes"});
}

TEST_CASE("bus programs: bad command lines exit 2 with the reason and an "
          "unreachable node exits 1") {
  auto missing = troupe({"sub", "--connect", "127.0.0.1:1"});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("missing PATTERN") != std::string::npos);
  auto bad = troupe({"sub", "orders..eu", "--connect", "127.0.0.1:1"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("invalid pattern 'orders..eu': token 2 is empty")
        != std::string::npos);
  auto wildcard = troupe({"pub", "orders.*", "x", "--connect", "127.0.0.1:1"});
  CHECK(wildcard.exit_code == 2);
  auto no_peer = troupe({"pub", "a", "x"});
  CHECK(no_peer.exit_code == 2);
  CHECK(no_peer.err.find("--connect HOST:PORT is required")
        != std::string::npos);
  auto no_listen = troupe({"node"});
  CHECK(no_listen.exit_code == 2);
  CHECK(no_listen.err.find("--listen HOST:PORT is required")
        != std::string::npos);
  auto bad_addr = troupe({"node", "--listen", "localhost"});
  CHECK(bad_addr.exit_code == 2);
  CHECK(bad_addr.err.find("'localhost' is not HOST:PORT") != std::string::npos);
  // A node that is gone: its port, once it exited.
  uint16_t port = 0;
  {
    auto n = start_node();
    port = n.port;
    n.proc->send_signal(SIGTERM);
    CHECK(n.proc->wait(patience).exit_code == 0);
  }
  auto gone
    = troupe({"sub", "x", "--connect", at(port), "--connect-timeout", "1s"});
  CHECK(gone.exit_code == 1);
  CHECK(gone.err.find("cannot link to " + at(port)) != std::string::npos);
}

} // namespace troupe::test
