#pragma once

#include <cstdint>

// Forward declarations of the message bus's public types.

namespace troupe::bus {

class bus;
class bus_cluster;
class bus_router;
class bus_subscription;
class subject_index;
enum class bus_overflow : uint8_t;
enum class errc : uint8_t;
struct bus_interest;
struct bus_message;
struct bus_message_view;
struct cluster_options;
struct cluster_peer;
struct cluster_stats;
struct inject_options;
struct subscription_options;
struct subscription_stats;

} // namespace troupe::bus
