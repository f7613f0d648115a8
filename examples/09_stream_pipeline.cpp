// Shows a stream: a producer, two stages and two consumers. Items travel in
// batches, and each consumer grants credit for the items it will take, so
// the producer makes items only as fast as the consumers use them.
//
//   producer --1..N--> square --x*x--> odd --+--round-robin--> consumer a
//            <-credit-         <-credit-     +--round-robin--> consumer b
//                                                <-credit-
//   producer --close--> ... --close--> consumers, which end; then the
//   stages end, then the producer: its end means the stream is complete.
//
// Expected output (default: --items 100):
// [PRODUCER] sent 100 items, then closed the stream
// [CONSUMERS] received 50 odd squares, each exactly once, sum 166650
// [PIPELINE] complete

#include <algorithm>
#include <array>
#include <cstdint>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <vector>

#include "troupe/runtime/run.hpp"
#include "troupe/stream/stream.hpp"

namespace {

using namespace troupe::stream;

struct config : troupe::config {
  int32_t items = 100;
  config() {
    opt_group{custom_options_, "global"}.add(
      items, "items", "number of items to produce (default: 100, at most 1e7)");
    description("A stream: producer -> map -> filter -> two consumers.");
  }
};

// What each consumer received. A list is written only by its consumer; the
// producer reads both after all consumers have ended.
using tally = std::array<std::vector<int64_t>, 2>;

// Prints what happened; runs when the producer ends (after all others).
void report(const caf::error& reason, int32_t sent, const tally& got,
            caf::actor_system& sys) {
  std::vector<int64_t> all{got[0]};
  all.insert(all.end(), got[1].begin(), got[1].end());
  std::sort(all.begin(), all.end());
  bool once = std::adjacent_find(all.begin(), all.end()) == all.end();
  auto sum = std::accumulate(all.begin(), all.end(), int64_t{0});
  std::cout << "[PRODUCER] sent " << sent << " items"
            << (reason ? "" : ", then closed the stream") << "\n"
            << "[CONSUMERS] received " << all.size() << " odd squares, "
            << (once ? "each exactly once" : "some twice") << ", sum " << sum
            << "\n"
            << "[PIPELINE] " << (reason ? sys.render(reason) : "complete")
            << std::endl;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<config>(
    argc, argv, [](troupe::node& n, const config& cfg) {
      // The consumers keep every item, to show that each arrived once.
      if (cfg.items < 1 || cfg.items > 10'000'000) {
        std::cerr << "stream_pipeline: invalid value '" << cfg.items
                  << "' for option '--items' (expected 1 to 10000000)\n";
        return 2;
      }
      // Small batches and windows: even 100 items take many rounds of credit.
      stream_options opts{8, 16, fan_out::round_robin}; // batch, window
      auto t = std::make_shared<tally>();
      // Consumers first: each stage and the producer need their handles.
      std::vector<stream_consumer<int64_t>> consumers;
      for (int i = 0; i < 2; ++i)
        consumers.push_back(spawn_sink<int64_t>(
          n, opts, [t, i](int64_t x) { (*t)[i].push_back(x); }));
      // The stages: keep odd numbers only; square each item.
      auto odd = spawn_filter<int64_t>(n, consumers, opts,
                                       [](int64_t x) { return x % 2 == 1; });
      auto square = spawn_map<int32_t>(
        n, {odd}, opts, [](int32_t x) { return static_cast<int64_t>(x) * x; });
      // The producer: 1, 2, ... items, then the end of the stream.
      auto sent = std::make_shared<int32_t>(0);
      spawn_source<int32_t>(
        n, {square}, opts,
        [sent, items = cfg.items]() -> std::optional<int32_t> {
          if (*sent == items)
            return std::nullopt;
          return ++*sent;
        },
        [sent, t, &n](const caf::error& reason) {
          report(reason, *sent, *t, n.system());
        });
      return 0; // run() now waits until every actor of the stream has ended
    });
}
