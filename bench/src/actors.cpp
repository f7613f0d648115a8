// The actors of the benchmarks, shared by every variant (raw CAF, troupe).

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include <caf/exit_reason.hpp>

#include "workloads.hpp"

namespace troupe::bench {

namespace {

constexpr int64_t batch_size = 1000;

void request_next(caf::event_based_actor* self, const caf::actor& buddy,
                  int64_t i, int64_t rounds, finish_line* fl) {
  self->request(buddy, caf::infinite, i).then([=](int64_t x) {
    if (x < rounds) {
      request_next(self, buddy, x + 1, rounds, fl);
      return;
    }
    fl->cross();
    self->send_exit(buddy, caf::exit_reason::user_shutdown);
    self->quit();
  });
}

} // namespace

int64_t proc_status_bytes(const char* field) {
  auto* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr)
    return -1;
  char line[256];
  int64_t result = -1;
  auto len = std::strlen(field);
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, field, len) == 0 && line[len] == ':') {
      long long kib = 0;
      if (std::sscanf(line + len + 1, "%lld", &kib) == 1)
        result = static_cast<int64_t>(kib) * 1024;
      break;
    }
  }
  std::fclose(f);
  return result;
}

caf::behavior pong(caf::event_based_actor*) {
  return {
    [](int64_t x) { return x; },
  };
}

caf::behavior ping(caf::event_based_actor* self, caf::actor buddy,
                   int64_t rounds, finish_line* fl) {
  request_next(self, buddy, 1, rounds, fl);
  return {
    [](go_atom) {}, // never sent; the pending request keeps the actor alive
  };
}

caf::behavior receiver(caf::event_based_actor* self, int64_t expected,
                       finish_line* fl) {
  auto count = std::make_shared<int64_t>(0);
  return {
    [=](int32_t) {
      if (++*count == expected) {
        fl->cross();
        self->quit();
      }
    },
  };
}

caf::behavior sender(caf::event_based_actor* self, caf::actor dst,
                     int64_t count) {
  auto left = std::make_shared<int64_t>(count);
  self->send(self, more_atom::value);
  return {
    [=](more_atom) {
      auto n = std::min(batch_size, *left);
      for (int64_t i = 0; i < n; ++i)
        self->send(dst, int32_t{1});
      *left -= n;
      if (*left > 0)
        self->send(self, more_atom::value);
      else
        self->quit();
    },
  };
}

caf::behavior waiter(caf::event_based_actor* self,
                     std::atomic<int64_t>* alive) {
  alive->fetch_add(1, std::memory_order_relaxed);
  return {
    [=](int32_t) { self->quit(); },
  };
}

caf::behavior spawner(caf::event_based_actor* self,
                      std::vector<caf::actor>* children,
                      std::atomic<int64_t>* alive) {
  for (auto& x : *children)
    x = self->spawn(waiter, alive);
  return {
    [=](go_atom) {
      for (auto& x : *children)
        self->send(x, int32_t{1});
      self->quit();
    },
  };
}

} // namespace troupe::bench
