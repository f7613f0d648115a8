#include "troupe/stream/detail/stream_actor.hpp"

#include <algorithm>
#include <exception>
#include <limits>
#include <string>

#include <caf/actor_cast.hpp>
#include <caf/error.hpp>
#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>

#include "troupe/runtime/errc.hpp"

namespace troupe::stream::detail {

namespace {

// Turns an exception thrown by a user's function into the actor's exit
// reason, which then ends the rest of the pipeline too (no stderr report).
caf::error exception_to_error(caf::scheduled_actor*, std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    return caf::make_error(caf::sec::runtime_error, std::string{e.what()});
  } catch (...) {
    return caf::make_error(caf::sec::runtime_error,
                           std::string{"unknown exception"});
  }
}

bool same_actor(const caf::actor& x, const caf::strong_actor_ptr& y) {
  return caf::actor_cast<caf::abstract_actor*>(x)
         == caf::actor_cast<caf::abstract_actor*>(y);
}

} // namespace

stream_actor::stream_actor(caf::actor_config& cfg, const stream_options& opts,
                           std::vector<caf::actor> consumers, done_fn on_done)
    : caf::event_based_actor(cfg), opts_(opts), done_(std::move(on_done)) {
  opts_.batch_size = std::max<uint32_t>(opts_.batch_size, 1);
  opts_.window = std::max<uint32_t>(opts_.window, 1);
  consumers_.reserve(consumers.size());
  for (auto& x : consumers)
    consumers_.push_back(path{std::move(x)});
  set_exception_handler(exception_to_error);
  set_down_handler([this](caf::down_msg& dm) { on_down(dm); });
}

stream_actor::~stream_actor() {
  // nop
}

void stream_actor::on_exit() {
  // Producer and consumer refer to each other; the producer breaks the
  // cycle. A consumer keeps its upstream alive until then: the upstream may
  // have no other reference while it waits for this actor's down message.
  consumers_.clear();
  if (done_) {
    caf::error reason = fail_state();
    // No reason and no finish(): CAF destroyed the actor because nothing
    // referred to it any more (it never got its upstream).
    if (!reason && !finished_)
      reason = caf::exit_reason::unreachable;
    auto f = std::move(done_);
    done_ = nullptr;
    f(reason);
  }
}

// -- consumer side ------------------------------------------------------------

void stream_actor::accept_upstream() {
  auto& from = current_sender();
  if (from == nullptr)
    return;
  if (upstream_) {
    quit(caf::make_error(caf::sec::invalid_argument,
                         std::string{"a stream consumer takes one upstream"}));
    return;
  }
  upstream_ = caf::actor_cast<caf::actor>(from);
  monitor(upstream_);
  grant(opts_.window);
}

void stream_actor::grant(size_t n) {
  if (!upstream_ || upstream_closed_ || n == 0)
    return;
  constexpr size_t max_grant = std::numeric_limits<int32_t>::max();
  send(upstream_, stream_credit_atom_v,
       static_cast<int32_t>(std::min(n, max_grant)));
}

bool stream_actor::from_upstream() {
  return upstream_ && !upstream_closed_
         && same_actor(upstream_, current_sender());
}

void stream_actor::handle_close() {
  if (!from_upstream())
    return;
  upstream_closed_ = true;
  upstream_closed();
}

void stream_actor::upstream_closed() {
  finish();
}

// -- producer side ------------------------------------------------------------

void stream_actor::open_consumers() {
  if (consumers_.empty()) {
    // Nothing to produce for: done at once.
    closed_ = true;
    finish();
    return;
  }
  for (auto& p : consumers_) {
    monitor(p.hdl);
    send(p.hdl, stream_open_atom_v);
  }
}

void stream_actor::add_credit(size_t n) {
  auto& from = current_sender();
  for (auto& p : consumers_) {
    if (same_actor(p.hdl, from)) {
      p.credit += n;
      return;
    }
  }
}

size_t stream_actor::select_batch(size_t ready) {
  receivers_.clear();
  if (closed_ || consumers_.empty() || ready == 0)
    return 0;
  auto limit = std::min<size_t>(ready, opts_.batch_size);
  if (opts_.policy == fan_out::broadcast) {
    auto least = limit;
    for (auto& p : consumers_)
      least = std::min(least, p.credit);
    if (least == 0)
      return 0;
    for (size_t i = 0; i < consumers_.size(); ++i)
      receivers_.push_back(i);
    return least;
  }
  auto n = consumers_.size();
  for (size_t k = 0; k < n; ++k) {
    auto i = (next_ + k) % n;
    if (consumers_[i].credit > 0) {
      receivers_.push_back(i);
      next_ = (i + 1) % n;
      return std::min(limit, consumers_[i].credit);
    }
  }
  return 0;
}

void stream_actor::charge(size_t n) {
  for (auto i : receivers_)
    consumers_[i].credit -= std::min(n, consumers_[i].credit);
  receivers_.clear();
}

void stream_actor::close_consumers() {
  if (closed_)
    return;
  closed_ = true;
  for (auto& p : consumers_)
    send(p.hdl, stream_close_atom_v);
  if (consumers_.empty())
    finish();
}

void stream_actor::resume_output() {
  // nop: a sink produces nothing
}

// -- both ---------------------------------------------------------------------

void stream_actor::on_down(caf::down_msg& dm) {
  if (upstream_ && dm.source == upstream_.address()) {
    if (upstream_closed_)
      return;
    if (dm.reason) {
      quit(std::move(dm.reason));
      return;
    }
    // A normal exit is as good as a close: nothing more will come.
    upstream_closed_ = true;
    upstream_closed();
    return;
  }
  auto i
    = std::find_if(consumers_.begin(), consumers_.end(),
                   [&](const path& p) { return p.hdl.address() == dm.source; });
  if (i == consumers_.end())
    return;
  if (dm.reason) {
    quit(std::move(dm.reason));
    return;
  }
  if (!closed_) {
    quit(caf::make_error(
      troupe::errc::closed,
      std::string{"a consumer exited before the end of the stream"}));
    return;
  }
  i->done = true;
  if (std::all_of(consumers_.begin(), consumers_.end(),
                  [](const path& p) { return p.done; }))
    finish();
}

void stream_actor::finish() {
  finished_ = true;
  quit();
}

} // namespace troupe::stream::detail
