#pragma once

#include <cstdint>

namespace troupe {

class config;
class node;
enum class errc : uint8_t;

} // namespace troupe
