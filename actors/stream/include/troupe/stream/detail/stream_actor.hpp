#pragma once

#include <cstddef>
#include <functional>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/make_message.hpp>
#include <caf/system_messages.hpp>

#include "troupe/stream/protocol.hpp"

// The base of the actors behind troupe/stream/stream.hpp; implemented in
// actors/stream/src/stream_actor.cpp. Include troupe/stream/stream.hpp instead.

namespace troupe::stream::detail {

/// The bookkeeping every stream actor shares: the upstream it consumes from
/// (stages and sinks) and the consumers it produces for (sources and stages),
/// with their credit. Not thread-safe; it is the actor's own state. @private
///
/// Invariants: (1) a consumer's `credit` plus the items sent to it and not
/// yet credited back never exceeds its window; (2) once `closed()` is true
/// no batch is sent any more; (3) the actor quits normally only when its
/// input ended (the upstream closed, or a source's generator ran dry) and all
/// of its consumers exited normally after the close.
class stream_actor : public caf::event_based_actor {
public:
  /// Runs once when the actor ends, with its exit reason (none: the stream
  /// completed).
  using done_fn = std::function<void(const caf::error&)>;

  stream_actor(caf::actor_config& cfg, const stream_options& opts,
               std::vector<caf::actor> consumers, done_fn on_done);

  ~stream_actor() override;

  void on_exit() override;

protected:
  // -- consumer side: the upstream (stages and sinks) -------------------------

  /// Accepts the sender of the current `stream_open` as the upstream,
  /// monitors it and grants it the window. A second upstream ends the actor
  /// with `sec::invalid_argument`.
  void accept_upstream();

  /// Grants `n` more items to the upstream.
  void grant(size_t n);

  /// Returns whether the current message comes from the upstream.
  bool from_upstream();

  /// Returns the upstream, or an invalid handle before `stream_open`.
  const caf::actor& upstream() const noexcept {
    return upstream_;
  }

  /// Handles `stream_close` from the upstream (ignores it from others).
  void handle_close();

  /// Runs once when the upstream closed the stream (by message or by
  /// exiting normally). Sinks quit; stages flush, then close their consumers.
  virtual void upstream_closed();

  // -- producer side: the consumers (sources and stages) ----------------------

  /// Sends `stream_open` to each consumer and monitors it.
  void open_consumers();

  /// Adds `n` to the credit of the sender of the current message.
  void add_credit(size_t n);

  /// Returns the size of the next batch, at most `ready` items, and picks its
  /// receivers by the fan-out policy; 0 if no consumer can take one now.
  size_t select_batch(size_t ready);

  /// Sends `xs` to the receivers picked by `select_batch` and charges them.
  template <class T>
  void ship(std::vector<T>&& xs) {
    auto n = xs.size();
    if (receivers_.size() == 1) {
      send(consumers_[receivers_.front()].hdl, stream_batch_atom_v,
           std::move(xs));
    } else {
      auto msg = caf::make_message(stream_batch_atom_v, std::move(xs));
      for (auto i : receivers_)
        send(consumers_[i].hdl, msg);
    }
    charge(n);
  }

  /// Sends `stream_close` to every consumer, once; a producer without
  /// consumers quits.
  void close_consumers();

  /// Returns whether `close_consumers` ran.
  bool closed() const noexcept {
    return closed_;
  }

  /// Runs when a consumer granted more credit: send what can be sent.
  virtual void resume_output();

  const stream_options& options() const noexcept {
    return opts_;
  }

private:
  struct path {
    caf::actor hdl;
    size_t credit = 0;
    bool done = false; // exited normally after the close
  };

  void charge(size_t n);

  void on_down(caf::down_msg& dm);

  // Quits normally: the stream is complete as far as this actor goes.
  void finish();

  stream_options opts_;
  done_fn done_;
  bool finished_ = false;
  caf::actor upstream_;
  bool upstream_closed_ = false;
  std::vector<path> consumers_;
  std::vector<size_t> receivers_; // picked by select_batch
  size_t next_ = 0;               // round-robin position
  bool closed_ = false;
};

} // namespace troupe::stream::detail
