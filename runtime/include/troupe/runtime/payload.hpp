#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/deserializer.hpp>
#include <caf/error.hpp>
#include <caf/sec.hpp>
#include <caf/serializer.hpp>

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

/// CAF's binary serializer, except that an infinity or a NaN is written as
/// its IEEE 754 bits: CAF 0.17's own conversion never ends for them (one
/// published on the bus hung the publisher). CAF reads those bits back as an
/// infinity; finite values are written as CAF writes them. @private
class checked_serializer final : public caf::serializer {
public:
  explicit checked_serializer(std::vector<char>& buf);

  caf::error begin_object(uint16_t& typenr, std::string& name) override;
  caf::error end_object() override;
  caf::error begin_sequence(size_t& num) override;
  caf::error end_sequence() override;
  caf::error apply_raw(size_t num_bytes, void* data) override;

protected:
  caf::error apply_impl(int8_t& x) override;
  caf::error apply_impl(uint8_t& x) override;
  caf::error apply_impl(int16_t& x) override;
  caf::error apply_impl(uint16_t& x) override;
  caf::error apply_impl(int32_t& x) override;
  caf::error apply_impl(uint32_t& x) override;
  caf::error apply_impl(int64_t& x) override;
  caf::error apply_impl(uint64_t& x) override;
  caf::error apply_impl(float& x) override;
  caf::error apply_impl(double& x) override;
  caf::error apply_impl(long double& x) override;
  caf::error apply_impl(std::string& x) override;
  caf::error apply_impl(std::u16string& x) override;
  caf::error apply_impl(std::u32string& x) override;

private:
  caf::binary_serializer inner_;
};

/// CAF's binary deserializer, except that a sequence may not announce more
/// elements than bytes are left: CAF 0.17 resizes a byte buffer
/// (`std::vector<char>`) to the announced length before it checks, so a few
/// bytes made it allocate 4 GiB. @private
class checked_deserializer final : public caf::deserializer {
public:
  checked_deserializer(const char* data, size_t size);

  size_t remaining() const noexcept {
    return inner_.remaining();
  }

  caf::error begin_object(uint16_t& typenr, std::string& name) override;
  caf::error end_object() override;
  caf::error begin_sequence(size_t& num) override;
  caf::error end_sequence() override;
  caf::error apply_raw(size_t num_bytes, void* data) override;

protected:
  caf::error apply_impl(int8_t& x) override;
  caf::error apply_impl(uint8_t& x) override;
  caf::error apply_impl(int16_t& x) override;
  caf::error apply_impl(uint16_t& x) override;
  caf::error apply_impl(int32_t& x) override;
  caf::error apply_impl(uint32_t& x) override;
  caf::error apply_impl(int64_t& x) override;
  caf::error apply_impl(uint64_t& x) override;
  caf::error apply_impl(float& x) override;
  caf::error apply_impl(double& x) override;
  caf::error apply_impl(long double& x) override;
  caf::error apply_impl(std::string& x) override;
  caf::error apply_impl(std::u16string& x) override;
  caf::error apply_impl(std::u32string& x) override;

private:
  caf::binary_deserializer inner_;
};

/// Loads a byte buffer like CAF, but checks the announced length against the
/// bytes left first if `f` is a binary deserializer (CAF's or troupe's). For
/// `inspect` overloads of messages that carry bytes (`bytes_field`).
caf::error load_bytes(caf::deserializer& f, std::vector<char>& buf);

} // namespace detail

/// Wraps a byte buffer in a message's `inspect` (`f(x.id,
/// bytes_field{x.payload})`) so that deserializing it checks the announced
/// length against the bytes that arrived: CAF 0.17 allocates the announced
/// length (up to 4 GiB) first.
struct bytes_field {
  std::vector<char>& buf;
};

/// @relates bytes_field
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bytes_field& x) {
  if constexpr (Inspector::writes_state)
    return detail::load_bytes(f, x.buf);
  else
    return f(x.buf);
}

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
  detail::checked_serializer sink{buf};
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
  detail::checked_serializer sink{buf};
  static_cast<void>(sink(const_cast<T&>(x)));
  return {buf.data(), buf.size()};
}

/// Deserializes `x` from the `size` bytes at `data`. Returns CAF's error if
/// they do not decode; with `exact`, also `caf::sec::invalid_argument` if
/// bytes are left over.
template <class T>
[[nodiscard]] caf::error from_bytes(const char* data, size_t size, T& x,
                                    bool exact = false) {
  detail::checked_deserializer source{data, size};
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
