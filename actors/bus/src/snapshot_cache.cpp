// The per-thread snapshot cache (see snapshot_cache.hpp).

#include "snapshot_cache.hpp"

#include <array>
#include <functional>

namespace troupe::bus::detail {

namespace {

// Slots per thread, shared by all buses.
constexpr size_t thread_cache_slots = 64;

thread_local std::array<cache_slot, thread_cache_slots> thread_cache;
thread_local cache_slot* last_slot = nullptr;

} // namespace

const snapshot_ptr* snapshot_cache::find(std::string_view subject,
                                         cache_slot*& slot) const noexcept {
  auto gen = gen_.load(std::memory_order_acquire);
  // Publishers often repeat a subject: try the last slot before hashing.
  if (auto* last = last_slot; last != nullptr && last->bus == bus_id_
                              && last->gen == gen
                              && last->snap->subject == subject)
    return &last->snap;
  auto& s
    = thread_cache[std::hash<std::string_view>{}(subject) % thread_cache_slots];
  last_slot = &s;
  if (s.bus == bus_id_ && s.gen == gen && s.snap->subject == subject)
    return &s.snap;
  slot = &s;
  return nullptr;
}

} // namespace troupe::bus::detail
