#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/behavior.hpp>

#include "troupe/stream/detail/stream_actor.hpp"
#include "troupe/stream/protocol.hpp"

// The actors behind troupe/stream/stream.hpp: a source, a stage and a sink on
// the shared base `stream_actor`. Include troupe/stream/stream.hpp instead.

namespace troupe::stream::detail {

/// A source: calls `Gen` (`std::optional<T>()`, `nullopt` = end) only while
/// its consumers have credit. With `R` other than `void`, its consumers are
/// reply sinks and `OnReply` (`void(const R&)`) sees each reply. @private
template <class T, class R, class Gen, class OnReply>
class source_actor final : public stream_actor {
public:
  source_actor(caf::actor_config& cfg, const stream_options& opts,
               std::vector<caf::actor> consumers, done_fn on_done, Gen gen,
               OnReply on_reply)
      : stream_actor(cfg, opts, std::move(consumers), std::move(on_done)),
        gen_(std::move(gen)), on_reply_(std::move(on_reply)) {
    // nop
  }

  const char* name() const override {
    return "troupe.stream_source";
  }

protected:
  caf::behavior make_behavior() override {
    open_consumers();
    auto on_credit = [this](stream_credit_atom, int32_t n) {
      add_credit(static_cast<size_t>(n));
      resume_output();
    };
    if constexpr (std::is_void_v<R>) {
      return {on_credit};
    } else {
      // A reply sink grants its first window as a plain credit.
      return {
        on_credit,
        [this](stream_credit_atom, const std::vector<R>& replies) {
          for (auto& x : replies)
            on_reply_(x);
          add_credit(replies.size());
          resume_output();
        },
      };
    }
  }

  void resume_output() override {
    while (!exhausted_) {
      auto n = select_batch(options().batch_size);
      if (n == 0)
        return;
      std::vector<T> xs;
      xs.reserve(n);
      while (xs.size() < n) {
        auto x = gen_();
        if (!x) {
          exhausted_ = true;
          break;
        }
        xs.push_back(std::move(*x));
      }
      if (!xs.empty())
        ship(std::move(xs));
    }
    close_consumers();
  }

private:
  Gen gen_;
  OnReply on_reply_;
  bool exhausted_ = false;
};

/// A stage: `F` (`void(const In&, std::vector<Out>&)`) appends zero or more
/// outputs per input. Buffers what its consumers have no credit for and
/// grants its upstream more only when that buffer is nearly empty. @private
template <class In, class Out, class F>
class stage_actor final : public stream_actor {
public:
  stage_actor(caf::actor_config& cfg, const stream_options& opts,
              std::vector<caf::actor> consumers, done_fn on_done, F fn)
      : stream_actor(cfg, opts, std::move(consumers), std::move(on_done)),
        fn_(std::move(fn)) {
    // nop
  }

  const char* name() const override {
    return "troupe.stream_stage";
  }

protected:
  caf::behavior make_behavior() override {
    open_consumers();
    return {
      [this](stream_open_atom) { accept_upstream(); },
      [this](stream_batch_atom, const std::vector<In>& xs) {
        if (!from_upstream())
          return;
        for (auto& x : xs)
          fn_(x, buf_);
        owed_ += xs.size();
        resume_output();
      },
      [this](stream_close_atom) { handle_close(); },
      [this](stream_credit_atom, int32_t n) {
        add_credit(static_cast<size_t>(n));
        resume_output();
      },
    };
  }

  void resume_output() override {
    while (!buf_.empty()) {
      auto n = select_batch(buf_.size());
      if (n == 0)
        break;
      std::vector<Out> xs;
      if (n == buf_.size()) {
        xs.swap(buf_);
      } else {
        auto first = buf_.begin();
        auto last = first + static_cast<std::ptrdiff_t>(n);
        xs.assign(std::make_move_iterator(first),
                  std::make_move_iterator(last));
        buf_.erase(first, last);
      }
      ship(std::move(xs));
    }
    // Pay the upstream back only once the buffer is nearly empty: a stage
    // whose consumers are slow holds at most a window (plus a batch).
    if (owed_ > 0 && buf_.size() < options().batch_size) {
      grant(owed_);
      owed_ = 0;
    }
    if (closing_ && buf_.empty())
      close_consumers();
  }

  void upstream_closed() override {
    closing_ = true;
    resume_output();
  }

private:
  F fn_;
  std::vector<Out> buf_;
  size_t owed_ = 0; // consumed from upstream, not yet granted back
  bool closing_ = false;
};

/// A sink: calls `F` (`void(const T&)`) per item, or with `R` other than
/// `void` (`R(const T&)`) replies with one `R` per item. @private
template <class T, class R, class F>
class sink_actor final : public stream_actor {
public:
  sink_actor(caf::actor_config& cfg, const stream_options& opts,
             done_fn on_done, F fn)
      : stream_actor(cfg, opts, {}, std::move(on_done)), fn_(std::move(fn)) {
    // nop
  }

  const char* name() const override {
    return "troupe.stream_sink";
  }

protected:
  caf::behavior make_behavior() override {
    return {
      [this](stream_open_atom) { accept_upstream(); },
      [this](stream_batch_atom, const std::vector<T>& xs) {
        if (!from_upstream())
          return;
        if constexpr (std::is_void_v<R>) {
          for (auto& x : xs)
            fn_(x);
          grant(xs.size());
        } else {
          std::vector<R> replies;
          replies.reserve(xs.size());
          for (auto& x : xs)
            replies.push_back(fn_(x));
          send(upstream(), stream_credit_atom_v, std::move(replies));
        }
      },
      [this](stream_close_atom) { handle_close(); },
    };
  }

private:
  F fn_;
};

/// Ignores replies; the `OnReply` of a source without replies.
struct ignore_reply {
  template <class T>
  void operator()(const T&) const noexcept {
    // nop
  }
};

/// Returns the actors behind `xs`.
template <class T, class R>
std::vector<caf::actor>
actors_of(const std::vector<stream_consumer<T, R>>& xs) {
  std::vector<caf::actor> result;
  result.reserve(xs.size());
  for (auto& x : xs)
    result.push_back(x.actor());
  return result;
}

/// Spawns `Impl` through `where`: an actor system, a `troupe::node` or an
/// actor (anything with `spawn<Impl>(xs...)`).
template <class Impl, class Where, class... Ts>
caf::actor spawn_stream_actor(Where& where, Ts&&... xs) {
  return where.template spawn<Impl>(std::forward<Ts>(xs)...);
}

} // namespace troupe::stream::detail
