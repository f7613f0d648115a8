#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/error.hpp>
#include <caf/sec.hpp>

// Typed payloads: how a value of any type that CAF can serialize (one with
// an `inspect` overload) travels as bytes, on the bus and in the task queue,
// and how the receiver tells which type the bytes hold. One identity for
// both: the type's readable name (`type_name<T>()`), or a 64-bit tag of that
// name where a fixed-size field is needed (`type_tag<T>()`, the bus's
// message header). Two programs agree on a type when they agree on its name
// and its `inspect`.

namespace troupe {

namespace detail {

/// Returns the readable form of a mangled type name (`mangled` itself if it
/// does not demangle). @private
std::string demangle(const char* mangled);

/// Returns the 64-bit FNV-1a hash of `name`, never 0. @private
uint64_t type_tag_of(std::string_view name);

/// Returns this thread's buffer for `encode_scratch`. @private
std::vector<char>& payload_scratch();

} // namespace detail

/// Returns the readable name of `T`, e.g. `std::pair<int, std::string>`.
template <class T>
const std::string& type_name() {
  static const std::string name = detail::demangle(typeid(T).name());
  return name;
}

/// Returns the tag of `type_name<T>()`: never 0, which stands for raw bytes.
template <class T>
uint64_t type_tag() {
  static const uint64_t tag = detail::type_tag_of(type_name<T>());
  return tag;
}

/// Returns `x` serialized with CAF's binary serializer.
template <class T>
std::vector<char> to_bytes(const T& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  // Serializing into a vector fails only on allocation failure, which throws.
  static_cast<void>(sink(const_cast<T&>(x)));
  return buf;
}

/// Serializes `x` into this thread's scratch buffer and returns a view of
/// it, valid until the next call on this thread: no allocation once the
/// buffer has grown, for publishing on a hot path.
template <class T>
std::string_view encode_scratch(const T& x) {
  auto& buf = detail::payload_scratch();
  buf.clear();
  caf::binary_serializer sink{nullptr, buf};
  static_cast<void>(sink(const_cast<T&>(x)));
  return {buf.data(), buf.size()};
}

/// Deserializes `x` from the `size` bytes at `data`. Returns CAF's error if
/// they do not decode; with `exact`, also `caf::sec::invalid_argument` if
/// bytes are left over.
template <class T>
[[nodiscard]] caf::error from_bytes(const char* data, size_t size, T& x,
                                    bool exact = false) {
  caf::binary_deserializer source{nullptr, data, size};
  if (auto err = source(x))
    return err;
  if (exact && source.remaining() != 0)
    return caf::make_error(caf::sec::invalid_argument,
                           "bytes left over after the payload");
  return caf::none;
}

/// Deserializes `x` from `buf`; see above.
template <class T>
[[nodiscard]] caf::error from_bytes(const std::vector<char>& buf, T& x,
                                    bool exact = false) {
  return from_bytes(buf.data(), buf.size(), x, exact);
}

} // namespace troupe
