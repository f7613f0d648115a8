// A subscription's buffer handling on the drainer's side, closing, and the
// drainer actor (see subscription.hpp).

#include "subscription.hpp"

#include <exception>
#include <utility>

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <spdlog/spdlog.h>

namespace troupe::bus::detail {

namespace {

// Messages a drainer runs per turn before it yields its scheduler thread.
constexpr size_t max_per_turn = 4096;

// A buffer keeps at most this much memory once it is drained again: enough
// for a full default buffer of 1 KiB messages (8192 of them). With 1 MiB, a
// subscriber behind its publisher freed and regrew an 8 MiB buffer per batch
// (glibc maps and unmaps it each time): 1 KiB messages under CPU contention
// ran at 0.08-0.13 M msgs/s, with 16 MiB at 1.03-1.17 M (bus_bench inproc,
// 500,000 messages, during a CI run).
constexpr size_t max_kept_bytes = size_t{16} << 20;

} // namespace

thread_local bus_sub* current_sub = nullptr;

bool bus_sub::drain() {
  size_t budget = max_per_turn;
  sub_lock guard{mtx_};
  for (;;) {
    if (closed_) {
      dropped_ += batch_left_;
      batch_left_ = 0;
      scheduled_ = false;
      // If the callback closed its own subscription, it is destroyed here,
      // after it returned.
      auto f = std::move(callback_);
      guard.unlock();
      batch_.clear(0);
      return false;
    }
    if (batch_left_ == 0 && pending_.empty()) {
      scheduled_ = false;
      return false;
    }
    if (budget == 0)
      return true; // still scheduled
    auto wake_publishers = false;
    if (batch_left_ == 0) {
      // `batch_` is empty: the publishers get its memory back.
      pending_.swap(batch_);
      batch_pos_ = batch_.begin();
      batch_left_ = batch_.count();
      pending_hint_.store(0, std::memory_order_relaxed);
      wake_publishers = waiters_ > 0;
    }
    running_ = true;
    guard.unlock();
    if (wake_publishers)
      not_full_.notify_all();
    auto* prev = current_sub;
    current_sub = this;
    for (; batch_left_ > 0 && budget > 0; --batch_left_, --budget) {
      if (closing_.load(std::memory_order_acquire))
        break;
      batch_pos_ = batch_.read(batch_pos_, msg_);
      try {
        callback_(msg_);
      } catch (const std::exception& e) {
        bump(failed_);
        log_->warn("bus: the callback of subscription '{}' threw: {}", pattern,
                   e.what());
      } catch (...) {
        bump(failed_);
        log_->warn("bus: the callback of subscription '{}' threw", pattern);
      }
      bump(delivered_);
    }
    current_sub = prev;
    if (batch_left_ == 0) {
      // Done with this batch: keep its memory for the next one, unless a
      // burst made it large.
      batch_.clear(max_kept_bytes);
      if (msg_.payload.capacity() > max_kept_bytes)
        std::string{}.swap(msg_.payload);
    }
    guard.lock();
    running_ = false;
    if (closed_)
      idle_.notify_all();
  }
}

void bus_sub::close() {
  caf::actor drainer;
  bus_callback f;
  {
    sub_lock guard{mtx_};
    if (closed_)
      return;
    closed_ = true;
    closing_.store(true, std::memory_order_release);
    dropped_ += pending_.count();
    pending_.clear(0);
    pending_hint_.store(0, std::memory_order_relaxed);
    not_full_.notify_all();
    if (current_sub != this) {
      idle_.wait(guard, [this] { return !running_; });
      f = std::move(callback_);
    }
    drainer = std::move(drainer_);
  }
  if (drainer)
    caf::anon_send_exit(drainer, caf::exit_reason::user_shutdown);
}

void bus_sub::drainer_down() {
  std::lock_guard<spin_lock> guard{mtx_};
  dead_ = true;
  dropped_ += pending_.count();
  pending_.clear(0);
  pending_hint_.store(0, std::memory_order_relaxed);
  not_full_.notify_all();
}

subscription_stats bus_sub::stats() {
  std::lock_guard<spin_lock> guard{mtx_};
  subscription_stats x;
  x.delivered = delivered_.load(std::memory_order_relaxed);
  x.dropped = dropped_;
  x.blocked = blocked_;
  x.failed = failed_.load(std::memory_order_relaxed);
  x.pending = pending_.count();
  return x;
}

caf::behavior drainer(caf::event_based_actor* self,
                      std::shared_ptr<bus_sub> sub) {
  return {
    [self, sub](drain_atom) {
      if (sub->drain())
        self->send(self, drain_atom::value);
    },
  };
}

} // namespace troupe::bus::detail
