// libFuzzer target: typed payloads. `troupe::from_bytes` decodes the payload
// of a bus message from another node (`bus_message::get<T>()`, exact: no byte
// may be left over) and the tasks and results of a queue (not exact); this
// target decodes its input as one of a few typical payload types and checks
// that what decodes encodes (`troupe::to_bytes`), decodes and encodes again
// to the same bytes.
//
// Input: a selector byte, whose low 7 bits pick the type (see `payload_types`
// in types.hpp) and whose bit 7 asks for an exact decode, then the payload.

#include <cstddef>
#include <cstdint>

#include "troupe/runtime/payload.hpp"

#include "check.hpp"
#include "types.hpp"

namespace {

template <class T>
void check(const char* data, size_t size, bool exact) {
  T x{};
  if (troupe::from_bytes(data, size, x, exact))
    return; // not a T: the receiver reports a type mismatch
  auto first = troupe::to_bytes(x);
  T y{};
  TROUPE_FUZZ_CHECK(!troupe::from_bytes(first, y, true));
  TROUPE_FUZZ_CHECK(troupe::to_bytes(y) == first);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  auto bytes = reinterpret_cast<const char*>(data) + 1;
  bool exact = (data[0] & 0x80) != 0;
  troupe::fuzz::with_selected<troupe::fuzz::payload_types>(
    data[0] & 0x7f,
    [&](auto x) { check<decltype(x)>(bytes, size - 1, exact); });
  return 0;
}
