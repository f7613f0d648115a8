// nats_bench: the NATS side of the message-bus benchmark (bench/bus/run),
// with the NATS C client (libnats 3.4) against a nats-server. The same
// workload as bus_bench: one publisher sends M messages of S bytes on
// subject `bench.x`, N subscriptions each take all of them.
//
//   nats_bench sub --url nats://127.0.0.1:PORT --subs 4 --count 2000000
//   nats_bench pub --url nats://127.0.0.1:PORT --size 16 --count 2000000
//
//   pub --PUB bench.x--> nats-server --MSG--> N connections of the sub
//   process, one subscription each (as the `nats bench` tool does)
//
// `sub` prints `ready` once every subscription is registered at the server
// (each connection flushed), then, once each subscription got M messages,
//   rate <msgs/s> delivered <copies> dropped <copies> ...
// with rate = M / (time of the last delivery - time of the first delivery,
// both in this process), as `bus_bench sub` measures. Subscriptions have no
// pending limit (`natsSubscription_SetPendingLimits(sub, -1, -1)`), so the
// client does not drop as a slow consumer; `dropped` is what
// `natsSubscription_GetDropped` reports anyway. `pub` publishes M messages,
// then `natsConnection_FlushTimeout` (the server has read them all).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <nats/nats.h>

#include "tally.hpp"

namespace {

using troupe::bench::bench_clock;
using troupe::bench::seconds;
using troupe::bench::tally;

constexpr const char* subject = "bench.x";

struct options {
  std::string mode;
  std::string url = "nats://127.0.0.1:4222";
  uint32_t subs = 1;
  uint32_t size = 16;
  uint64_t count = 1000000;
  uint32_t timeout_secs = 60;
};

const char* usage
  = "usage: nats_bench sub --url URL [--subs N] [--count M] [--timeout SECS]\n"
    "       nats_bench pub --url URL [--size S] [--count M]\n";

// Parses the command line into `opts`; returns false (after a message) if
// it is wrong.
bool parse(int argc, char** argv, options& opts) {
  if (argc < 2) {
    std::fputs(usage, stderr);
    return false;
  }
  opts.mode = argv[1];
  if (opts.mode != "sub" && opts.mode != "pub") {
    std::fputs(usage, stderr);
    return false;
  }
  for (int i = 2; i < argc; ++i) {
    std::string key = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "nats_bench: %s needs a value\n%s", key.c_str(),
                   usage);
      return false;
    }
    std::string value = argv[++i];
    char* end = nullptr;
    auto number = std::strtoull(value.c_str(), &end, 10);
    bool numeric = !value.empty() && *end == '\0';
    if (key == "--url") {
      opts.url = value;
      continue;
    }
    if (!numeric) {
      std::fprintf(stderr, "nats_bench: bad option or value: %s %s\n%s",
                   key.c_str(), value.c_str(), usage);
      return false;
    }
    if (key == "--subs")
      opts.subs = static_cast<uint32_t>(number);
    else if (key == "--size")
      opts.size = static_cast<uint32_t>(number);
    else if (key == "--count")
      opts.count = number;
    else if (key == "--timeout")
      opts.timeout_secs = static_cast<uint32_t>(number);
    else {
      std::fprintf(stderr, "nats_bench: unknown option %s\n%s", key.c_str(),
                   usage);
      return false;
    }
  }
  if (opts.subs == 0 || opts.count == 0) {
    std::fputs("nats_bench: --subs and --count must be at least 1\n", stderr);
    return false;
  }
  return true;
}

// Prints `what` with the client's last error; returns 1.
int fail(const char* what, natsStatus s) {
  std::fprintf(stderr, "nats_bench: %s: %s (%s)\n", what, natsStatus_GetText(s),
               nats_GetLastError(nullptr));
  return 1;
}

// Reports asynchronous errors, e.g. the client or server dropping a slow
// consumer's messages.
void on_error(natsConnection*, natsSubscription*, natsStatus err, void*) {
  std::fprintf(stderr, "nats_bench: asynchronous error: %s\n",
               natsStatus_GetText(err));
}

// Set before the program closes its connections on purpose.
std::atomic<bool> closing{false};

void on_disconnected(natsConnection*, void*) {
  if (!closing.load())
    std::fputs("nats_bench: disconnected from the server\n", stderr);
}

// The closure of subscription `i`.
struct sub_slot {
  tally* counts;
  size_t index;
};

void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* slot = static_cast<sub_slot*>(closure);
  slot->counts->hit(slot->index);
  natsMsg_Destroy(msg);
}

// Returns options for a connection to `url` that reports errors and does
// not reconnect (a dropped connection loses messages: the run fails).
natsStatus make_options(const std::string& url, natsOptions** out) {
  natsStatus s = natsOptions_Create(out);
  if (s == NATS_OK)
    s = natsOptions_SetURL(*out, url.c_str());
  if (s == NATS_OK)
    s = natsOptions_SetAllowReconnect(*out, false);
  if (s == NATS_OK)
    s = natsOptions_SetErrorHandler(*out, on_error, nullptr);
  if (s == NATS_OK)
    s = natsOptions_SetDisconnectedCB(*out, on_disconnected, nullptr);
  return s;
}

int run_sub(const options& opts) {
  natsOptions* nopts = nullptr;
  if (auto s = make_options(opts.url, &nopts); s != NATS_OK)
    return fail("cannot create options", s);
  tally t{opts.subs, opts.count};
  std::vector<sub_slot> slots;
  for (size_t i = 0; i < opts.subs; ++i)
    slots.push_back(sub_slot{&t, i});
  std::vector<natsConnection*> conns(opts.subs, nullptr);
  std::vector<natsSubscription*> subs(opts.subs, nullptr);
  int rc = 0;
  for (size_t i = 0; i < opts.subs && rc == 0; ++i) {
    natsStatus s = natsConnection_Connect(&conns[i], nopts);
    if (s != NATS_OK) {
      rc = fail("cannot connect", s);
      break;
    }
    s = natsConnection_Subscribe(&subs[i], conns[i], subject, on_msg,
                                 &slots[i]);
    if (s == NATS_OK)
      s = natsSubscription_SetPendingLimits(subs[i], -1, -1);
    if (s != NATS_OK)
      rc = fail("cannot subscribe", s);
  }
  // The server has registered a subscription once its connection's PING
  // got the PONG.
  for (size_t i = 0; i < opts.subs && rc == 0; ++i)
    if (auto s = natsConnection_FlushTimeout(conns[i], 10000); s != NATS_OK)
      rc = fail("cannot flush", s);
  if (rc == 0) {
    std::puts("ready");
    std::fflush(stdout);
    if (!t.wait(std::chrono::seconds(opts.timeout_secs))) {
      std::fprintf(stderr,
                   "nats_bench: timeout: %llu of %llu deliveries, then "
                   "nothing for %u s\n",
                   static_cast<unsigned long long>(t.total()),
                   static_cast<unsigned long long>(opts.count * opts.subs),
                   opts.timeout_secs);
      rc = 1;
    } else {
      uint64_t delivered = 0;
      uint64_t dropped = 0;
      for (auto* sub : subs) {
        int64_t n = 0;
        if (natsSubscription_GetDelivered(sub, &n) == NATS_OK)
          delivered += static_cast<uint64_t>(n);
        if (natsSubscription_GetDropped(sub, &n) == NATS_OK)
          dropped += static_cast<uint64_t>(n);
      }
      auto secs = seconds(t.first(), t.last());
      std::printf("rate %.0f delivered %llu dropped %llu secs %.3f\n",
                  static_cast<double>(opts.count) / secs,
                  static_cast<unsigned long long>(delivered),
                  static_cast<unsigned long long>(dropped), secs);
      std::fflush(stdout);
      rc = dropped == 0 && delivered == opts.count * opts.subs ? 0 : 1;
    }
  }
  closing = true;
  for (auto* sub : subs)
    if (sub != nullptr) {
      natsSubscription_Unsubscribe(sub);
      natsSubscription_Destroy(sub);
    }
  for (auto* nc : conns)
    natsConnection_Destroy(nc);
  natsOptions_Destroy(nopts);
  return rc;
}

int run_pub(const options& opts) {
  natsOptions* nopts = nullptr;
  if (auto s = make_options(opts.url, &nopts); s != NATS_OK)
    return fail("cannot create options", s);
  natsConnection* nc = nullptr;
  natsStatus s = natsConnection_Connect(&nc, nopts);
  int rc = 0;
  if (s != NATS_OK) {
    rc = fail("cannot connect", s);
  } else {
    std::string payload(opts.size, 'x');
    auto len = static_cast<int>(payload.size());
    auto start = bench_clock::now();
    for (uint64_t i = 0; i < opts.count && s == NATS_OK; ++i)
      s = natsConnection_Publish(nc, subject, payload.data(), len);
    auto published = bench_clock::now();
    if (s != NATS_OK) {
      rc = fail("cannot publish", s);
    } else if (s = natsConnection_FlushTimeout(nc, 60000); s != NATS_OK) {
      rc = fail("cannot flush", s);
    } else {
      auto flushed = bench_clock::now();
      std::printf("published %llu in %.3f s, flushed after %.3f s: %.0f "
                  "msgs/s\n",
                  static_cast<unsigned long long>(opts.count),
                  seconds(start, published), seconds(start, flushed),
                  static_cast<double>(opts.count) / seconds(start, flushed));
      std::fflush(stdout);
    }
  }
  closing = true;
  natsConnection_Destroy(nc);
  natsOptions_Destroy(nopts);
  return rc;
}

} // namespace

int main(int argc, char** argv) {
  options opts;
  if (!parse(argc, argv, opts))
    return 2;
  int rc = opts.mode == "sub" ? run_sub(opts) : run_pub(opts);
  nats_Close();
  return rc;
}
