// bus_bench: troupe's side of the message-bus benchmark (bench/bus/run). One
// publisher sends M messages of S bytes on subject `bench.x`, N plain
// subscriptions each take all of them.
//
//   bus_bench inproc --subs 4 --size 16 --count 2000000
//       one process, one bus: main --publish--> bus --> N subscriptions
//   bus_bench sub --listen 127.0.0.1:0 --subs 4 --count 2000000
//   bus_bench pub --connect 127.0.0.1:PORT --size 16 --count 2000000
//       two processes: pub's bus --bus_cluster--> sub's bus --> N subscriptions
//
// Output, one line each (`sub` prints `listening on HOST:PORT` first):
//   rate <msgs/s> delivered <copies> dropped <copies> ...
// where msgs/s counts published messages (each reaches all N subscriptions):
// - inproc: M / (time from the first publish to the moment the last
//   subscription got its M-th message);
// - sub: M / (time of the last delivery - time of the first delivery, both
//   in this process);
// - pub prints `published ...` (its own view, not the benchmark's figure).
// Exit status 0 only if every subscription got all M messages and nothing
// was dropped.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <caf/config_option_adder.hpp>

#include "troupe/bus/bus.hpp"
#include "troupe/bus/cluster.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/run.hpp"

#include "tally.hpp"

namespace {

using namespace std::chrono_literals;
using troupe::bench::bench_clock;
using troupe::bench::seconds;
using troupe::bench::tally;
using troupe::bus::bus;
using troupe::bus::bus_message;
using troupe::bus::bus_overflow;
using troupe::bus::bus_subscription;
using troupe::bus::subscription_options;

constexpr const char* subject = "bench.x";

// -- options ------------------------------------------------------------------

// The options of all modes; each mode's config shows those it uses.
struct bench_options {
  uint32_t subs = 1;
  uint32_t size = 16;
  uint64_t count = 1000000;
  caf::timespan timeout = 60s;
  caf::timespan max_wait = 10s;
  std::string listen = "127.0.0.1:0";
  std::string connect;
  // Parsed from `listen` or `connect`.
  std::string host;
  uint16_t port = 0;
};

// Adds the options that `mode` uses to `adder`.
void add_options(caf::config_option_adder& adder, bench_options& x,
                 const std::string& mode) {
  if (mode != "pub")
    adder.add(x.subs, "subs", "number of subscriptions (default 1)");
  if (mode != "sub")
    adder.add(x.size, "size", "payload bytes per message (default 16)");
  adder.add(x.count, "count", "messages to publish (default 1000000)")
    .add(x.timeout, "timeout",
         "give up when no message arrives for this long (default 60s)")
    .add(x.max_wait, "max-wait",
         "how long a publisher waits for room in a full buffer before the "
         "message is dropped (default 10s)");
  if (mode == "sub")
    adder.add(x.listen, "listen",
              "HOST:PORT to accept the publisher at (default 127.0.0.1:0)");
  if (mode == "pub")
    adder.add(x.connect, "connect", "HOST:PORT of the subscriber process");
}

// Checks what all modes share; returns an error naming the bad option.
caf::error check_options(const troupe::config& cfg, const bench_options& x,
                         const std::string& mode) {
  auto& args = cfg.positional_args();
  if (args.size() != 1 || args.front() != mode)
    return caf::make_error(troupe::errc::invalid_option_value,
                           "expected exactly one MODE, '" + mode + "'");
  if (x.subs == 0 || x.count == 0)
    return caf::make_error(troupe::errc::invalid_option_value,
                           "--subs and --count must be at least 1");
  return caf::none;
}

// A mode's configuration: `Base`'s options (troupe's, or `net_config`'s)
// plus the mode's own; quiet logging unless `--troupe.log-level` says
// otherwise.
template <class Base>
struct bench_config : Base {
  bench_options opts;
  std::string mode;

  template <class... Ts>
  explicit bench_config(std::string mode_name, Ts&&... xs)
      : Base(std::forward<Ts>(xs)...), mode(std::move(mode_name)) {
    this->log_level = "warn";
    this->positional("MODE");
    this->description("troupe's side of the message-bus benchmark, mode '"
                      + mode + "' (see bench/bus/bus_bench.cpp)");
    caf::config_option_adder adder{this->custom_options_, "global"};
    add_options(adder, opts, mode);
  }
};

struct inproc_config : bench_config<troupe::config> {
  inproc_config() : bench_config("inproc") {}

  caf::error prepare() {
    return check_options(*this, opts, mode);
  }
};

struct sub_config : bench_config<troupe::net_config> {
  sub_config() : bench_config("sub", role::listen) {}

  caf::error prepare() {
    if (auto err = check_options(*this, opts, mode))
      return err;
    // parse_host_port refuses port 0, which is what the driver passes.
    auto sep = opts.listen.rfind(':');
    if (sep == std::string::npos || sep == 0 || sep + 1 == opts.listen.size())
      return caf::make_error(troupe::errc::invalid_option_value,
                             "--listen: '" + opts.listen
                               + "' is not HOST:PORT (port 0: any)");
    auto port = opts.listen.substr(sep + 1);
    if (port != "0") {
      if (auto err = troupe::parse_host_port(opts.listen, opts.host, opts.port))
        return err;
    } else {
      opts.host = opts.listen.substr(0, sep);
      opts.port = 0;
    }
    bind = opts.host;
    return secure(bind);
  }
};

struct pub_config : bench_config<troupe::net_config> {
  pub_config() : bench_config("pub", role::connect) {}

  caf::error prepare() {
    if (auto err = check_options(*this, opts, mode))
      return err;
    if (auto err = troupe::parse_host_port(opts.connect, opts.host, opts.port))
      return err;
    return secure(opts.host);
  }
};

// -- shared parts -------------------------------------------------------------

int fail(troupe::node& n, const std::string& what) {
  std::cerr << "bus_bench: " << what << std::endl;
  n.stop();
  return 1;
}

// Subscribes `t.hit(i)` for i < subs; the subscriptions make publishers wait
// (up to `max_wait`) rather than drop.
caf::expected<std::vector<bus_subscription>>
subscribe_all(bus& b, tally& t, const bench_options& opts) {
  subscription_options sopts;
  sopts.policy = bus_overflow::block;
  sopts.max_wait = opts.max_wait;
  std::vector<bus_subscription> subs;
  for (size_t i = 0; i < opts.subs; ++i) {
    auto sub
      = b.subscribe(subject, sopts, [&t, i](const bus_message&) { t.hit(i); });
    if (!sub)
      return std::move(sub.error());
    subs.push_back(std::move(*sub));
  }
  return subs;
}

// Returns the counters of all `subs` added up, once they account for
// `expected` messages or after 5 s: a subscription counts a message as
// delivered when its callback has returned, so the tally, counted inside
// the callback, can be done a moment earlier.
troupe::bus::subscription_stats
sum_stats(const std::vector<bus_subscription>& subs, uint64_t expected) {
  auto deadline = bench_clock::now() + 5s;
  for (;;) {
    troupe::bus::subscription_stats sum;
    for (auto& s : subs) {
      auto x = s.stats();
      sum.delivered += x.delivered;
      sum.dropped += x.dropped;
      sum.blocked += x.blocked;
    }
    if (sum.delivered + sum.dropped >= expected
        || bench_clock::now() >= deadline)
      return sum;
    std::this_thread::sleep_for(1ms);
  }
}

// -- inproc -------------------------------------------------------------------

int run_inproc(troupe::node& n, const inproc_config& cfg) {
  auto& opts = cfg.opts;
  tally t{opts.subs, opts.count};
  bus b{n};
  auto subs = subscribe_all(b, t, opts);
  if (!subs)
    return fail(n, "cannot subscribe: " + troupe::error_text(subs.error()));
  std::string payload(opts.size, 'x');
  auto start = bench_clock::now();
  for (uint64_t i = 0; i < opts.count; ++i)
    if (auto err = b.publish(subject, payload))
      return fail(n, "cannot publish: " + troupe::error_text(err));
  auto published = bench_clock::now();
  if (!t.wait(opts.timeout))
    return fail(n, "timeout: " + std::to_string(t.total()) + " of "
                     + std::to_string(opts.count * opts.subs)
                     + " deliveries, then nothing for --timeout");
  auto st = sum_stats(*subs, opts.count * opts.subs);
  auto secs = seconds(start, t.last());
  std::printf("rate %.0f delivered %llu dropped %llu blocked %llu secs %.3f "
              "publish_secs %.3f\n",
              static_cast<double>(opts.count) / secs,
              static_cast<unsigned long long>(st.delivered),
              static_cast<unsigned long long>(st.dropped),
              static_cast<unsigned long long>(st.blocked), secs,
              seconds(start, published));
  std::fflush(stdout);
  subs->clear();
  return st.dropped == 0 && st.delivered == opts.count * opts.subs ? 0 : 1;
}

// -- sub and pub --------------------------------------------------------------

int run_sub(troupe::node& n, const sub_config& cfg) {
  auto& opts = cfg.opts;
  tally t{opts.subs, opts.count};
  bus b{n};
  auto subs = subscribe_all(b, t, opts);
  if (!subs)
    return fail(n, "cannot subscribe: " + troupe::error_text(subs.error()));
  troupe::bus::cluster_options copts;
  copts.max_wait = opts.max_wait;
  std::optional<troupe::bus::bus_cluster> c;
  c.emplace(n, b, cfg, copts);
  auto port = c->listen(opts.port);
  if (!port)
    return fail(n, "cannot listen: " + troupe::error_text(port.error()));
  std::cout << "listening on " << cfg.bind << ":" << *port << std::endl;
  if (!t.wait(opts.timeout))
    return fail(n, "timeout: " + std::to_string(t.total()) + " of "
                     + std::to_string(opts.count * opts.subs)
                     + " deliveries, then nothing for --timeout");
  auto st = sum_stats(*subs, opts.count * opts.subs);
  auto cst = c->stats();
  auto secs = seconds(t.first(), t.last());
  std::printf("rate %.0f delivered %llu dropped %llu received %llu "
              "cluster_dropped %llu secs %.3f\n",
              static_cast<double>(opts.count) / secs,
              static_cast<unsigned long long>(st.delivered),
              static_cast<unsigned long long>(st.dropped),
              static_cast<unsigned long long>(cst.received),
              static_cast<unsigned long long>(cst.dropped), secs);
  std::fflush(stdout);
  // Let the publisher see its last acknowledgements and leave first, so that
  // its flush does not end on a lost link.
  auto deadline = bench_clock::now() + 10s;
  while (!c->peers().empty() && bench_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  c.reset(); // the cluster before the bus
  subs->clear();
  bool ok = st.dropped == 0 && cst.dropped == 0
            && st.delivered == opts.count * opts.subs;
  return ok ? 0 : 1;
}

int run_pub(troupe::node& n, const pub_config& cfg) {
  auto& opts = cfg.opts;
  bus b{n};
  troupe::bus::cluster_options copts;
  copts.max_wait = opts.max_wait;
  std::optional<troupe::bus::bus_cluster> c;
  c.emplace(n, b, cfg, copts);
  if (auto err = c->connect(opts.host, opts.port, 10s))
    return fail(n, "cannot connect to " + opts.connect + ": "
                     + troupe::error_text(err));
  if (!c->wait_for_interest(subject, 10s))
    return fail(n, std::string{"no interest in "} + subject + " after 10 s");
  std::string payload(opts.size, 'x');
  auto start = bench_clock::now();
  for (uint64_t i = 0; i < opts.count; ++i)
    if (auto err = b.publish(subject, payload))
      return fail(n, "cannot publish: " + troupe::error_text(err));
  auto published = bench_clock::now();
  auto err = c->flush(60s);
  auto flushed = bench_clock::now();
  auto cst = c->stats();
  std::printf("published %llu in %.3f s, flushed after %.3f s: %.0f msgs/s; "
              "sent %llu dropped %llu%s%s\n",
              static_cast<unsigned long long>(opts.count),
              seconds(start, published), seconds(start, flushed),
              static_cast<double>(opts.count) / seconds(start, flushed),
              static_cast<unsigned long long>(cst.sent),
              static_cast<unsigned long long>(cst.dropped),
              err ? "; flush: " : "",
              err ? troupe::error_text(err).c_str() : "");
  std::fflush(stdout);
  c.reset(); // the cluster before the bus
  return !err && cst.dropped == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "inproc")
    return troupe::run<inproc_config>(argc, argv, run_inproc);
  if (mode == "sub")
    return troupe::run<sub_config>(argc, argv, run_sub);
  if (mode == "pub")
    return troupe::run<pub_config>(argc, argv, run_pub);
  std::cerr << "usage: bus_bench inproc|sub|pub [OPTIONS]  (bus_bench MODE "
               "--help for each mode's options)\n";
  return 2;
}
