#pragma once

#include <cstdint>

// Forward declarations of the runtime's public types.

namespace troupe {

class backoff;
class config;
class net_config;
class node;
enum class errc : uint8_t;
struct node_info;
struct reconnect_options;
template <class T>
class one_shot;

namespace security {

struct tls_files;

} // namespace security

} // namespace troupe
