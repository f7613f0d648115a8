// libFuzzer target: the task queue's wire. The messages that a master and its
// workers exchange (troupe/queue/protocol.hpp) arrive from the peer's socket
// and CAF's binary deserializer decodes them through their `inspect`
// overloads; this target does the same with its input, and checks that what
// decodes serializes, deserializes and serializes again to the same bytes.
//
// Input: a selector byte, which picks the type (see `queue_wire_types` in
// types.hpp), then the bytes to deserialize.

#include <cstddef>
#include <cstdint>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "troupe/queue/protocol.hpp"

#include "check.hpp"
#include "types.hpp"

namespace {

template <class T>
std::vector<char> serialize(T& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  TROUPE_FUZZ_CHECK(!sink(x));
  return buf;
}

template <class T>
void check(const char* data, size_t size) {
  T x;
  caf::binary_deserializer source{nullptr, data, size};
  if (source(x))
    return; // not a T: the receiver drops it
  auto first = serialize(x);
  T y;
  caf::binary_deserializer again{nullptr, first};
  TROUPE_FUZZ_CHECK(!again(y));
  TROUPE_FUZZ_CHECK(again.remaining() == 0);
  TROUPE_FUZZ_CHECK(serialize(y) == first);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  auto bytes = reinterpret_cast<const char*>(data) + 1;
  troupe::fuzz::with_selected<troupe::fuzz::queue_wire_types>(
    data[0], [&](auto x) { check<decltype(x)>(bytes, size - 1); });
  return 0;
}
