// Typed payloads (troupe/runtime/payload.hpp) where CAF 0.17's own
// serializers fail: an infinity (CAF's conversion never ends) and a byte
// buffer whose announced length exceeds the bytes (CAF allocates it first).

#include "troupe/runtime/payload.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <caf/sec.hpp>
#include <catch2/catch.hpp>

namespace troupe {

TEST_CASE("an infinity and a NaN encode, and decode as infinities",
          "[runtime][payload]") {
  auto inf = std::numeric_limits<double>::infinity();
  double back = 0;
  REQUIRE_FALSE(from_bytes(to_bytes(inf), back, true));
  CHECK(back == inf);
  REQUIRE_FALSE(from_bytes(to_bytes(-inf), back, true));
  CHECK(back == -inf);
  REQUIRE_FALSE(
    from_bytes(to_bytes(std::numeric_limits<double>::quiet_NaN()), back, true));
  CHECK(std::isinf(back));
  float f = 0;
  REQUIRE_FALSE(
    from_bytes(to_bytes(std::numeric_limits<float>::infinity()), f, true));
  CHECK(std::isinf(f));
  // Finite values are untouched.
  REQUIRE_FALSE(from_bytes(to_bytes(-2.5), back, true));
  CHECK(back == -2.5);
}

TEST_CASE("a byte buffer that announces more bytes than there are fails "
          "without allocating them",
          "[runtime][payload]") {
  // A 4 GiB length (CAF's varint: ff ff ff ff 0f) and one byte.
  std::vector<char> wire{'\xff', '\xff', '\xff', '\xff', '\x0f', 'x'};
  std::vector<char> bytes;
  auto err = from_bytes(wire, bytes);
  CHECK(err == caf::sec::end_of_stream);
  CHECK(bytes.capacity() < 1024);
  // The same bytes as a length that fits decode.
  std::vector<char> ok{'\x01', 'x'};
  REQUIRE_FALSE(from_bytes(ok, bytes, true));
  CHECK(bytes == std::vector<char>{'x'});
}

} // namespace troupe
