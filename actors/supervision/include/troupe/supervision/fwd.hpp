#pragma once

#include <cstdint>

// Forward declarations of the supervision capability's public types
// (supervisors and pools).

namespace troupe::supervision {

class pool;
template <class R>
class async_result;
enum class errc : uint8_t;
enum class restart_policy : uint8_t;
enum class restart_strategy : uint8_t;
struct child_spec;
struct pool_options;
struct supervised_child;
struct supervisor_flags;
struct supervisor_state;

} // namespace troupe::supervision
