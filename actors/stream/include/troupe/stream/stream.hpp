#pragma once

#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>

#include "troupe/stream/detail/stream_actors.hpp"
#include "troupe/stream/protocol.hpp"

// Typed producer/consumer streams with credit-based flow control: a source
// produces items only while its consumers have granted credit, so a fast
// producer cannot fill a slow consumer's mailbox, and items travel in batches,
// so a message carries hundreds of them.
//
//   source --batches--> stage (map, filter, ...) --batches--> sink(s)
//          <--credit---                          <--credit---
//
// Each function below spawns one actor of a pipeline, consumers first (a
// producer needs their handles). `where` is a `caf::actor_system`, a
// `troupe::node` (the actor becomes top-level: stopped on SIGINT) or an actor
// (`*self`). Every actor ends on its own: a sink once its upstream closed the
// stream and it consumed every item; a stage once it passed everything on and
// its consumers ended; a source once its generator ran dry and all its
// consumers ended. So a source's end means the whole pipeline completed.
//
// A failure anywhere ends the whole pipeline with that reason: a function
// that throws ends its actor with `sec::runtime_error` (context: the
// exception's message); an exit message (e.g. on shutdown) ends it with the
// message's reason; a consumer that exits normally before the end of the
// stream ends its producer with `troupe::errc::closed`.
//
// Each spawn function takes an optional `done` callback,
// `void(const caf::error&)`, that runs once when its actor ends, with the
// reason (none: completed); it runs in that actor's context and must not
// throw. Monitoring the returned actor reports the same reason.
//
// Items are copied into batches: `T` must be copyable, and inspectable like
// any CAF message type (builtin types and `std::string` are). Every function
// (`gen`, `f`, `done`) runs in its own actor, one call at a time, so it needs
// no lock for what it captures; it must not block for long (it holds a
// scheduler thread). Spawning is thread-safe.

namespace troupe::stream {

/// Spawns a source that sends the items of `gen` (`std::optional<T>()`,
/// `std::nullopt` at the end) to `consumers`, spread by `opts.policy`, in
/// batches of up to `opts.batch_size`. It calls `gen` only for items its
/// consumers have credit for. Returns the source actor; once `gen` ran dry it
/// closes the stream and exits when all consumers have ended.
/// Messaging interface: sends `(stream_open_atom)`, `(stream_batch_atom,
/// std::vector<T>)`, `(stream_close_atom)`; accepts `(stream_credit_atom,
/// int32_t)` from its consumers.
/// @pre `consumers` is not empty (else the source ends at once).
template <class T, class Where, class Gen, class Done = std::nullptr_t>
caf::actor spawn_source(Where& where, std::vector<stream_consumer<T>> consumers,
                        const stream_options& opts, Gen gen,
                        Done done = nullptr) {
  using impl = detail::source_actor<T, void, Gen, detail::ignore_reply>;
  return detail::spawn_stream_actor<impl>(
    where, opts, detail::actors_of(consumers),
    detail::stream_actor::done_fn{std::move(done)}, std::move(gen),
    detail::ignore_reply{});
}

/// Spawns a source like `spawn_source` for consumers that reply to each item
/// (`spawn_reply_sink`): `on_reply` (`void(const R&)`) sees every reply, in
/// the order of the items for each consumer. The producer side of seed 003's
/// `r = c.send(n)`, in batches: credit comes back with the replies.
/// Messaging interface: as `spawn_source`, but accepts `(stream_credit_atom,
/// std::vector<R>)`.
template <class T, class R, class Where, class Gen, class OnReply,
          class Done = std::nullptr_t>
caf::actor spawn_request_source(Where& where,
                                std::vector<stream_consumer<T, R>> consumers,
                                const stream_options& opts, Gen gen,
                                OnReply on_reply, Done done = nullptr) {
  using impl = detail::source_actor<T, R, Gen, OnReply>;
  return detail::spawn_stream_actor<impl>(
    where, opts, detail::actors_of(consumers),
    detail::stream_actor::done_fn{std::move(done)}, std::move(gen),
    std::move(on_reply));
}

/// Spawns a stage that calls `f` (`void(const In&, std::vector<Out>& out)`)
/// for each item of its upstream and sends what `f` appends to `out` on to
/// `consumers`, spread by `opts.policy`. It grants its upstream `opts.window`
/// items and more only as its consumers take its output, so its buffer stays
/// within about a window. Returns a handle to give to a producer.
/// Messaging interface: both sides of the stream protocol (see
/// troupe/stream/protocol.hpp), consuming `In` and producing `Out`.
template <class In, class Out, class Where, class F,
          class Done = std::nullptr_t>
stream_consumer<In>
spawn_stage(Where& where, std::vector<stream_consumer<Out>> consumers,
            const stream_options& opts, F f, Done done = nullptr) {
  using impl = detail::stage_actor<In, Out, F>;
  return stream_consumer<In>{detail::spawn_stream_actor<impl>(
    where, opts, detail::actors_of(consumers),
    detail::stream_actor::done_fn{std::move(done)}, std::move(f))};
}

/// Spawns a stage that sends `f(x)` on for each item `x`; `Out` is what `f`
/// (`Out(const In&)`) returns. See `spawn_stage`.
template <class In, class Where, class F, class Done = std::nullptr_t,
          class Out = std::decay_t<std::invoke_result_t<F&, const In&>>>
stream_consumer<In>
spawn_map(Where& where, std::vector<stream_consumer<Out>> consumers,
          const stream_options& opts, F f, Done done = nullptr) {
  return spawn_stage<In, Out>(
    where, std::move(consumers), opts,
    [f = std::move(f)](const In& x, std::vector<Out>& out) mutable {
      out.push_back(f(x));
    },
    std::move(done));
}

/// Spawns a stage that passes on the items `x` for which `pred(x)` is true.
/// See `spawn_stage`.
template <class T, class Where, class Pred, class Done = std::nullptr_t>
stream_consumer<T>
spawn_filter(Where& where, std::vector<stream_consumer<T>> consumers,
             const stream_options& opts, Pred pred, Done done = nullptr) {
  return spawn_stage<T, T>(
    where, std::move(consumers), opts,
    [pred = std::move(pred)](const T& x, std::vector<T>& out) mutable {
      if (pred(x))
        out.push_back(x);
    },
    std::move(done));
}

/// Spawns a sink that calls `f` (`void(const T&)`) for each item, in the
/// order its upstream sent them, and grants the upstream more credit after
/// each batch: at most `opts.window` items wait in its mailbox. It exits
/// normally once the upstream closed the stream.
/// Messaging interface: accepts `(stream_open_atom)`, `(stream_batch_atom,
/// std::vector<T>)`, `(stream_close_atom)` from one upstream; sends
/// `(stream_credit_atom, int32_t)` to it.
template <class T, class Where, class F, class Done = std::nullptr_t>
stream_consumer<T> spawn_sink(Where& where, const stream_options& opts, F f,
                              Done done = nullptr) {
  using impl = detail::sink_actor<T, void, F>;
  return stream_consumer<T>{detail::spawn_stream_actor<impl>(
    where, opts, detail::stream_actor::done_fn{std::move(done)}, std::move(f))};
}

/// Spawns a sink that answers each item: `f` (`R(const T&)`) runs per item and
/// its results go back to the producer (`spawn_request_source`) as one
/// message per batch, which is also the credit for the next items. The
/// consumer side of seed 003's generator, `r = yield r`, in batches.
/// Messaging interface: as `spawn_sink`, but sends `(stream_credit_atom,
/// std::vector<R>)` with one reply per item of the batch.
template <class T, class Where, class F, class Done = std::nullptr_t,
          class R = std::decay_t<std::invoke_result_t<F&, const T&>>>
stream_consumer<T, R> spawn_reply_sink(Where& where, const stream_options& opts,
                                       F f, Done done = nullptr) {
  static_assert(!std::is_void_v<R>, "a reply sink's function returns a reply");
  using impl = detail::sink_actor<T, R, F>;
  return stream_consumer<T, R>{detail::spawn_stream_actor<impl>(
    where, opts, detail::stream_actor::done_fn{std::move(done)}, std::move(f))};
}

} // namespace troupe::stream
