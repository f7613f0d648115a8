// The out-of-line parts of troupe/runtime/payload.hpp: demangling, the tag
// hash and the per-thread scratch buffer.

#include "troupe/runtime/payload.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>

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

// -- checked_serializer -------------------------------------------------------

checked_serializer::checked_serializer(std::vector<char>& buf)
    : caf::serializer(static_cast<caf::execution_unit*>(nullptr)),
      inner_(nullptr, buf) {}

caf::error checked_serializer::begin_object(uint16_t& typenr,
                                            std::string& name) {
  return inner_.begin_object(typenr, name);
}

caf::error checked_serializer::end_object() {
  return inner_.end_object();
}

caf::error checked_serializer::begin_sequence(size_t& num) {
  return inner_.begin_sequence(num);
}

caf::error checked_serializer::end_sequence() {
  return inner_.end_sequence();
}

caf::error checked_serializer::apply_raw(size_t num_bytes, void* data) {
  return inner_.apply_raw(num_bytes, data);
}

#define TROUPE_FORWARD(cls, type)                                              \
  caf::error cls::apply_impl(type& x) {                                        \
    return inner_(x);                                                          \
  }

TROUPE_FORWARD(checked_serializer, int8_t)
TROUPE_FORWARD(checked_serializer, uint8_t)
TROUPE_FORWARD(checked_serializer, int16_t)
TROUPE_FORWARD(checked_serializer, uint16_t)
TROUPE_FORWARD(checked_serializer, int32_t)
TROUPE_FORWARD(checked_serializer, uint32_t)
TROUPE_FORWARD(checked_serializer, int64_t)
TROUPE_FORWARD(checked_serializer, uint64_t)
TROUPE_FORWARD(checked_serializer, long double)
TROUPE_FORWARD(checked_serializer, std::string)
TROUPE_FORWARD(checked_serializer, std::u16string)
TROUPE_FORWARD(checked_serializer, std::u32string)

// Finite values as CAF writes them; an infinity or a NaN, on which CAF's
// conversion loops forever, as its IEEE 754 bits (CAF reads them back as an
// infinity).
caf::error checked_serializer::apply_impl(float& x) {
  if (std::isfinite(x))
    return inner_(x);
  static_assert(sizeof(float) == sizeof(uint32_t));
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return inner_(bits);
}

caf::error checked_serializer::apply_impl(double& x) {
  if (std::isfinite(x))
    return inner_(x);
  static_assert(sizeof(double) == sizeof(uint64_t));
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return inner_(bits);
}

// -- checked_deserializer -----------------------------------------------------

checked_deserializer::checked_deserializer(const char* data, size_t size)
    : caf::deserializer(static_cast<caf::execution_unit*>(nullptr)),
      inner_(static_cast<caf::execution_unit*>(nullptr), data, size) {}

caf::error checked_deserializer::begin_object(uint16_t& typenr,
                                              std::string& name) {
  return inner_.begin_object(typenr, name);
}

caf::error checked_deserializer::end_object() {
  return inner_.end_object();
}

caf::error checked_deserializer::begin_sequence(size_t& num) {
  if (auto err = inner_.begin_sequence(num))
    return err;
  // Every element takes at least one byte.
  if (num > inner_.remaining())
    return caf::make_error(caf::sec::end_of_stream,
                           "a sequence announces more elements than bytes "
                           "are left");
  return caf::none;
}

caf::error checked_deserializer::end_sequence() {
  return inner_.end_sequence();
}

caf::error checked_deserializer::apply_raw(size_t num_bytes, void* data) {
  return inner_.apply_raw(num_bytes, data);
}

TROUPE_FORWARD(checked_deserializer, int8_t)
TROUPE_FORWARD(checked_deserializer, uint8_t)
TROUPE_FORWARD(checked_deserializer, int16_t)
TROUPE_FORWARD(checked_deserializer, uint16_t)
TROUPE_FORWARD(checked_deserializer, int32_t)
TROUPE_FORWARD(checked_deserializer, uint32_t)
TROUPE_FORWARD(checked_deserializer, int64_t)
TROUPE_FORWARD(checked_deserializer, uint64_t)
TROUPE_FORWARD(checked_deserializer, float)
TROUPE_FORWARD(checked_deserializer, double)
TROUPE_FORWARD(checked_deserializer, long double)
TROUPE_FORWARD(checked_deserializer, std::string)
TROUPE_FORWARD(checked_deserializer, std::u16string)
TROUPE_FORWARD(checked_deserializer, std::u32string)

#undef TROUPE_FORWARD

caf::error load_bytes(caf::deserializer& f, std::vector<char>& buf) {
  size_t size = 0;
  if (auto err = f.begin_sequence(size))
    return err;
  size_t left = SIZE_MAX;
  if (auto* bin = dynamic_cast<caf::binary_deserializer*>(&f))
    left = bin->remaining();
  else if (auto* checked = dynamic_cast<checked_deserializer*>(&f))
    left = checked->remaining();
  if (size > left)
    return caf::make_error(caf::sec::end_of_stream,
                           "a byte buffer announces more bytes than are left");
  buf.resize(size);
  if (size > 0)
    if (auto err = f.apply_raw(size, buf.data()))
      return err;
  return f.end_sequence();
}

} // namespace troupe::detail
