#pragma once

// Private: TCP connects bounded by a deadline, for `probe_tcp` and
// `security::diagnose_tls`.

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/expected.hpp>

#include "posix_util.hpp"

namespace troupe::detail {

/// The clock of connect deadlines.
using clock_type = std::chrono::steady_clock;

/// Waits until `fd` is ready for `events` (as for poll(2)) or `deadline`
/// passes. Returns 1 when ready, 0 on timeout, -1 on error (see errno).
int wait_fd(int fd, short events, clock_type::time_point deadline);

/// Connects to `host:port` (a name, an IPv4 address or an IPv6 address, in
/// brackets or not) before `deadline`, which is `timeout` from when the caller
/// started. Returns a connected non-blocking socket, or `errc::connect_failed`
/// with the reason: "connection refused", "timed out after N ms" (naming
/// `timeout`), "cannot resolve host H: ...".
[[nodiscard]] caf::expected<unique_fd>
connect_tcp(const std::string& host, uint16_t port,
            std::chrono::milliseconds timeout, clock_type::time_point deadline);

} // namespace troupe::detail
