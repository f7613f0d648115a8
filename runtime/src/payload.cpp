// The out-of-line parts of troupe/runtime/payload.hpp: demangling, the tag
// hash and the per-thread scratch buffer.

#include "troupe/runtime/payload.hpp"

#include <cstdlib>

#include <cxxabi.h>

namespace troupe::detail {

std::string demangle(const char* mangled) {
  int status = 0;
  char* text = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status != 0 || text == nullptr)
    return mangled;
  std::string result{text};
  std::free(text); // NOLINT: allocated by __cxa_demangle
  return result;
}

uint64_t type_tag_of(std::string_view name) {
  // FNV-1a, 64 bit.
  uint64_t h = 14695981039346656037ull;
  for (auto ch : name) {
    h ^= static_cast<unsigned char>(ch);
    h *= 1099511628211ull;
  }
  return h == 0 ? 1 : h;
}

std::vector<char>& payload_scratch() {
  thread_local std::vector<char> buf;
  return buf;
}

} // namespace troupe::detail
