#pragma once

// Private: the state of a bus (`bus_core`), which the public `bus` and its
// subscription handles share: the subscriptions and their index, the
// snapshot cache, the local interest reported to a router, and the requests
// waiting for a reply.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>
#include <spdlog/fwd.h>

#include "troupe/bus/bus.hpp"
#include "troupe/bus/router.hpp"
#include "troupe/bus/subject.hpp"
#include "troupe/runtime/fwd.hpp"
#include "troupe/runtime/one_shot.hpp"

#include "interest_table.hpp"
#include "snapshot_cache.hpp"
#include "subscription.hpp"

namespace troupe::bus::detail {

/// A request waiting for its reply: the first reply, or `closed` when the
/// bus ends, is delivered to it once.
using pending_request = one_shot<bus_message>;

/// The state of a bus, shared with its subscription handles. The member
/// functions of `bus` forward here; see there for what they do.
///
/// Invariants, under `mtx_`: (1) `subs_` and `index_` hold the same
/// subscriptions; (2) `interest_` counts one (pattern, queue group) pair per
/// subscription in `subs_`, and the router, if any, has been told of each
/// pair that became present or absent since it was attached; (3) every
/// change of subscriptions or router invalidates `cache_`.
///
/// Thread-safety: every member function may be called from any thread.
class bus_core {
public:
  explicit bus_core(node& host);

  bus_core(const bus_core&) = delete;
  bus_core& operator=(const bus_core&) = delete;

  // -- subscriptions ----------------------------------------------------------

  caf::expected<std::shared_ptr<bus_sub>> subscribe(std::string_view pattern,
                                                    subscription_options opts,
                                                    bus_callback f);

  void remove(const std::shared_ptr<bus_sub>& sub);

  // -- publishing -------------------------------------------------------------

  /// Delivers `m` locally, then hands it to the router; sets `*receivers`
  /// to the number of subscriptions and nodes it went to.
  caf::error publish(const bus_message_view& m, size_t* receivers = nullptr);

  /// `publish` for a request: the router, if any, reports to `t` which
  /// nodes got it and which of them were lost; sets `*local` to the
  /// number of local subscriptions it went to.
  caf::error publish(const bus_message_view& m, size_t* receivers,
                     size_t* local, const std::shared_ptr<request_tracker>& t);

  caf::error inject(const bus_message_view& m, const inject_options& opts);

  // -- request/reply ----------------------------------------------------------

  caf::expected<bus_message> request(bus_message_view m, caf::timespan timeout);

  // -- the router hook --------------------------------------------------------

  /// Installs `r` (or none) and returns the present interest.
  std::vector<bus_interest> attach(std::shared_ptr<bus_router> r);

  // -- shutdown ---------------------------------------------------------------

  void shutdown();

private:
  caf::expected<std::shared_ptr<bus_sub>>
  subscribe_impl(std::string pattern, subscription_options opts, bus_callback f,
                 bus_sub::sink_fn sink);

  caf::expected<std::shared_ptr<bus_sub>> add(std::shared_ptr<bus_sub> sub,
                                              bool blocking);

  static caf::error payload_too_large(const bus_message_view& m);

  /// Subscriptions or router changed; under `mtx_`.
  void changed();

  /// Returns this thread's cache entry for `subject`, filled if needed, or
  /// null with `err` set.
  const snapshot_ptr* find(std::string_view subject, caf::error& err);

  /// Returns the snapshot of `subject`; under `mtx_`.
  snapshot_ptr build(std::string_view subject);

  /// A reply to one of this bus's requests, on the replier's thread.
  void on_reply(const bus_message_view& m);

  node& host_;
  spdlog::logger* log_;
  const uint64_t id_;
  std::string inbox_prefix_;
  std::atomic<uint64_t> next_sub_id_{1};
  snapshot_cache cache_;

  std::mutex mtx_;
  bool closed_ = false;
  subject_index index_;
  std::unordered_map<uint64_t, std::shared_ptr<bus_sub>> subs_;
  interest_table interest_;
  std::shared_ptr<bus_router> router_;
  std::vector<uint64_t> ids_; // scratch for `build`

  std::mutex req_mtx_;
  bool requests_closed_ = false;
  uint64_t next_request_ = 0;
  std::unordered_map<uint64_t, std::shared_ptr<pending_request>> requests_;
};

} // namespace troupe::bus::detail
