#pragma once

#include <cstdint>

// Forward declarations of the stream capability's public types.

namespace troupe::stream {

template <class T, class R>
class stream_consumer;
enum class fan_out : uint8_t;
struct stream_options;

} // namespace troupe::stream
