#include "troupe/runtime/random_id.hpp"

#include <random>

namespace troupe {

uint64_t random_id() {
  std::random_device rd;
  uint64_t x = (uint64_t{rd()} << 32) ^ rd();
  return x == 0 ? 1 : x;
}

std::string to_hex(uint64_t x) {
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = "0123456789abcdef"[x & 0xf];
    x >>= 4;
  }
  return out;
}

} // namespace troupe
