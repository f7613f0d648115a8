#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include <caf/actor.hpp>
#include <caf/atom.hpp>

namespace troupe::stream {

// -- messages -----------------------------------------------------------------

// troupe's streams are ordinary CAF messages between the actors of a pipeline
// (a source, stages, sinks). Every consumer (stage or sink) has exactly one
// upstream; every producer (source or stage) may have several consumers.
//
//   producer --(stream_open)-------------------> consumer   once, at start
//   producer <-(stream_credit, n)--------------- consumer   "n more items"
//   producer --(stream_batch, vector<T>)-------> consumer   at most n in all
//   producer <-(stream_credit, vector<R>)------- reply consumer: one R per item
//   producer --(stream_close)------------------> consumer   end of stream
//
// Producer and consumer monitor each other. A consumer that has its items and
// the close exits normally; its producer ends once all of its consumers have.
// Any other exit (an exception, a kill, a lost node) ends the neighbours with
// the same reason, so a failure anywhere ends the whole pipeline.

/// Sent by a producer to each consumer at start; the consumer replies with
/// its first credit.
using stream_open_atom = caf::atom_constant<caf::atom("stopen")>;
constexpr stream_open_atom stream_open_atom_v = stream_open_atom{};

/// Tags a batch of items, `(stream_batch_atom, std::vector<T>)`.
using stream_batch_atom = caf::atom_constant<caf::atom("stbatch")>;
constexpr stream_batch_atom stream_batch_atom_v = stream_batch_atom{};

/// Tags a credit, `(stream_credit_atom, int32_t n)` or, from a reply sink,
/// `(stream_credit_atom, std::vector<R>)` (one reply per item; credit for as
/// many items).
using stream_credit_atom = caf::atom_constant<caf::atom("stcredit")>;
constexpr stream_credit_atom stream_credit_atom_v = stream_credit_atom{};

/// Tells a consumer that no more batches follow.
using stream_close_atom = caf::atom_constant<caf::atom("stclose")>;
constexpr stream_close_atom stream_close_atom_v = stream_close_atom{};

// -- options ------------------------------------------------------------------

/// How a producer with several consumers spreads its items.
enum class fan_out : uint8_t {
  /// Each batch goes to one consumer: the next one in turn that has credit.
  /// Each item reaches exactly one consumer; a slow consumer gets fewer.
  round_robin,
  /// Each batch goes to every consumer (one shared, immutable message). The
  /// slowest consumer sets the pace.
  broadcast,
};

/// Sizes and policy of a stream actor. Producers use `batch_size` and
/// `policy`, consumers `window`; a stage uses all three.
struct stream_options {
  /// Items per batch message, at most. Larger batches cost fewer messages;
  /// smaller ones reach the consumer sooner. 256 measured best on a 2-core
  /// box; batches of tens of KB (1,024 `std::string` replies) ran 10x slower
  /// there: glibc's malloc gave the memory back and faulted it in again for
  /// each batch. @pre `batch_size > 0`
  uint32_t batch_size = 256;
  /// Items a consumer lets its upstream have in flight: sent and not yet
  /// consumed. This bounds the consumer's mailbox (and a stage's buffer) no
  /// matter how fast the producer is. @pre `window > 0`
  uint32_t window = 4096;
  /// How a producer spreads its items over several consumers.
  fan_out policy = fan_out::round_robin;
};

// -- handles ------------------------------------------------------------------

/// A handle to an actor that consumes a stream of `T` (a sink or a stage), as
/// returned by `spawn_sink` and friends; a producer takes these. `R` is the
/// type of its reply per item, or `void` for none. A plain value: copies refer
/// to the same actor; as thread-safe as `caf::actor`.
template <class T, class R = void>
class stream_consumer {
public:
  using value_type = T;
  using reply_type = R;

  stream_consumer() = default;

  /// Wraps `hdl`. @pre `hdl` consumes `T` as described above.
  explicit stream_consumer(caf::actor hdl) noexcept : hdl_(std::move(hdl)) {}

  /// Returns the actor, e.g. to monitor it or to send it an exit message.
  const caf::actor& actor() const noexcept {
    return hdl_;
  }

  /// Returns whether this handle refers to an actor.
  explicit operator bool() const noexcept {
    return static_cast<bool>(hdl_);
  }

private:
  caf::actor hdl_;
};

} // namespace troupe::stream
